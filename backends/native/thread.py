"""Guest threads and the futex the engine thread waits on (native engine).

A run's guest code executes on a native thread of its own, created with
``pthread_create`` through ctypes: its start routine is ``rt_thread_main`` in
the compiled object (:mod:`zjit.backends.llvm.runtime_asm`), so no Python
callback (no libffi closure, no writable and executable page) is involved. The
thread calling ``run()`` stays in Python: it waits on the context's
``hc_state`` word with ``FUTEX_WAIT`` (GIL released, with a timeout so signal
handlers, deadlines and interrupts are seen), serves the host requests the
guest thread posts there, and joins the thread when it reports FINISHED.

Signals are blocked on guest threads, so SIGINT reaches the waiting thread.
"""

from __future__ import annotations

import ctypes

from .stack import Stack

SYS_FUTEX = 202
"""x86-64 (the only host this engine runs on natively today)."""
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
