"""Guest threads and the futex the engine thread waits on (native engine).

A run's guest code executes on a native *guest thread*, created with
``pthread_create`` through ctypes: its start routine is ``rt_thread_main`` in
the compiled object (:mod:`zjit.backends.llvm.runtime_asm`), so no Python
callback (no libffi closure, no writable and executable page) is involved.
The thread calling ``run()`` stays in Python: it waits on the context's
``hc_state`` word with ``FUTEX_WAIT`` (GIL released, with a timeout so signal
handlers, deadlines and interrupts are seen) and serves the host requests the
guest thread posts there until the run is FINISHED.

A guest thread owns its context and stack and runs one run after another of
the same code object: between runs it sleeps on ``hc_state`` (:class:`GuestThread`).
Idle threads are kept for reuse (:func:`acquire`/:func:`release`, at most
:data:`KEEP_IDLE` in the process) and ended when their code is closed
(:func:`retire`). Creating a thread per run cost about 60 us of every run's
overhead on the development machine; reusing one, about 10 us (docs/jit.md).

Signals are blocked on guest threads, so SIGINT reaches the waiting thread.
"""

from __future__ import annotations

import ctypes
import os
import threading

from ..context import CTX_SIZE, HC_RUNNING, OFFSETS, Ctx
from ..targets import HOST_NAME
from . import stack as stacks
from .stack import Stack

KEEP_IDLE = 8
"""Idle guest threads kept in the process (the least recently used beyond are ended)."""

SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(HOST_NAME, 202)
"""The futex system call number of this host."""
FUTEX_WAIT_PRIVATE = 128
FUTEX_WAKE_PRIVATE = 129
_EINTR, _EAGAIN, _ETIMEDOUT = 4, 11, 110
_ATTR_BYTES = 128
"""Room for a ``pthread_attr_t`` (56 bytes on x86-64 glibc)."""

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
_attr_init = _libc.pthread_attr_init
_attr_init.argtypes = [ctypes.c_void_p]
_attr_setstack = _libc.pthread_attr_setstack
_attr_setstack.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
_attr_destroy = _libc.pthread_attr_destroy
_attr_destroy.argtypes = [ctypes.c_void_p]
_create = _libc.pthread_create
_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_join = _libc.pthread_join
_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]  # noqa: RUF012


def futex_wait(addr: int, expected: int, timeout: float) -> None:
    """Sleep while the 32-bit word at ``addr`` holds ``expected``, at most
    ``timeout`` seconds (returns early on a wake, a change or a signal)."""
    ts = _Timespec(int(timeout), int((timeout % 1.0) * 1e9))
    _syscall(SYS_FUTEX, addr, FUTEX_WAIT_PRIVATE, expected, ctypes.addressof(ts), None, 0)


def futex_wake(addr: int) -> None:
    """Wake the thread sleeping on the word at ``addr``."""
    _syscall(SYS_FUTEX, addr, FUTEX_WAKE_PRIVATE, 1, None, None, 0)


def _all_signals() -> set[int]:
    import _signal

    return set(_signal.valid_signals())


_SIGNALS: set[int] = set()


def start(routine: int, arg: int, stack: Stack) -> int:
    """Start a native thread running ``routine(arg)`` on ``stack``, with every
    signal blocked; returns its ``pthread_t``."""
    import _signal

    if not _SIGNALS:
        _SIGNALS.update(_all_signals())
    attr = ctypes.create_string_buffer(_ATTR_BYTES)
    if _attr_init(attr) != 0:
        raise OSError("pthread_attr_init failed")
    try:
        rc = _attr_setstack(attr, stack.low, stack.usable)
        if rc != 0:
            raise OSError(rc, f"pthread_attr_setstack failed for a {stack.usable >> 10} KiB stack")
        tid = ctypes.c_ulong()
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, _SIGNALS)
        try:
            rc = _create(ctypes.byref(tid), attr, routine, arg)
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
        if rc != 0:
            raise OSError(rc, f"pthread_create failed (error {rc})")
        return tid.value
    finally:
        _attr_destroy(attr)


def join(tid: int) -> None:
    """Wait for the thread to end (it has reported FINISHED: this is short)."""
    rc = _join(tid, None)
    if rc != 0:
        raise OSError(rc, f"pthread_join failed (error {rc})")


class GuestThread:
    """A native thread running ``rt_thread_main`` of one code object on its own
    context and stack; it sleeps between runs."""

    __slots__ = ("ctx", "address", "routine", "stack", "tid", "word")

    def __init__(self, routine: int, stack: Stack) -> None:
        self.ctx = Ctx()  # zeroed: idle
        self.address = ctypes.addressof(self.ctx)
        self.word = self.address + OFFSETS["hc_state"]
        self.routine = routine
        self.stack = stack
        self.tid = start(routine, self.address, stack)

    def reset(self) -> Ctx:
        """The context, zeroed (idle: the thread keeps waiting) for the next run."""
        ctypes.memset(self.address, 0, CTX_SIZE)
        return self.ctx

    def go(self, entry: int) -> None:
        """Start the run of ``entry`` (the context is filled in)."""
        self.ctx.run_entry = entry
        self.ctx.hc_state = HC_RUNNING
        futex_wake(self.word)

    def stop(self) -> None:
        """End the (idle) thread and give its stack back."""
        self.ctx.run_entry = None
        self.ctx.hc_state = HC_RUNNING
        futex_wake(self.word)
        join(self.tid)
        stacks.release(self.stack)


_idle: list[GuestThread] = []
_idle_lock = threading.Lock()
_pid = os.getpid()


def _forked() -> None:
    """In a child process the parent's guest threads do not exist: forget them."""
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _idle.clear()


def acquire(routine: int, need: int) -> GuestThread:
    """An idle guest thread of the code whose ``rt_thread_main`` is at ``routine``
    with at least ``need`` bytes of stack, or a new one."""
    with _idle_lock:
        _forked()
        fits = [t for t in _idle if t.routine == routine and t.stack.usable >= need + stacks.TLS_MARGIN]
        if fits:
            best = min(fits, key=lambda t: t.stack.size)
            _idle.remove(best)
            return best
    return GuestThread(routine, stacks.acquire(need))


def release(thread: GuestThread) -> None:
    """Keep ``thread`` (its run has FINISHED) for another run; end the least
    recently used idle thread when too many are kept."""
    with _idle_lock:
        _forked()
        _idle.append(thread)
        surplus = _idle[:-KEEP_IDLE] if len(_idle) > KEEP_IDLE else []
        del _idle[:len(surplus)]
    for t in surplus:
        t.stop()


def retire(routine: int) -> None:
    """End every idle thread of the code whose ``rt_thread_main`` is at ``routine``
    (before that code is unmapped)."""
    with _idle_lock:
        _forked()
        mine = [t for t in _idle if t.routine == routine]
        _idle[:] = [t for t in _idle if t.routine != routine]
    for t in mine:
        t.stop()
