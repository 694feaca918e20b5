"""The native engine (backend ``"jit"``): lift, lower, compile, load, run.

:class:`JitBackend` compiles a verified program for the host (through the
shared :class:`~zjit.backends.engine.CompilingBackend`: once per
:class:`~zjit.machine.Specialisation`, cached in memory and on disk; a cache
hit imports neither llvmlite nor the lowering) and maps the object with the
W^X loader (:mod:`.loader`). A run (:class:`_Run`) fills a fresh context
(:class:`~zjit.backends.context.Ctx`) from the machine and runs the entry on a
native guest thread of its own (:mod:`.thread`: ``pthread_create`` of the
object's ``rt_thread_main``, on a stack sized for the guest's call depth,
:mod:`.stack`); the calling thread serves the host requests the guest posts in
the context (:mod:`.hostcalls`) until the guest thread finishes, then copies
registers, fuel, heap top and I/O positions back.

Runs are independent: every run has its own context and host-call state, so one
executable may run on many threads at once. Compiled code is unmapped when its
backend is closed or garbage-collected (never while a run is in progress).
"""

from __future__ import annotations

import ctypes
import threading
import weakref

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError
from zjit.machine import Machine, Outcome

from ..context import RT_HOST_REQUEST, RT_THREAD_MAIN, Ctx
from ..engine import CodeInfo, CompilingBackend
from ..run import CodeRun
from ..targets import HOST_SUPPORTED, HOST_TRIPLE
from . import hostcalls, stack, thread

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

OUT_BUFFER_BYTES = 64 << 10
"""Native output buffer per run (in-memory output only)."""


class CompiledCode:
    """Machine code of one specialisation, mapped and ready to call."""

    def __init__(self, loaded: Any, info: CodeInfo, obj: bytes) -> None:
        self.loaded = loaded
        self.info = info
        self.obj = obj
        """The object (its frame table is read at a trap, :mod:`zjit.backends.backtrace`)."""
        self.frames: Any = None
        self.entries = {pc: loaded.symbol(sym) for pc, sym in info.entries.items()}
        self.thread_main = loaded.symbol(RT_THREAD_MAIN)
        self.host_request = loaded.symbol(RT_HOST_REQUEST)
        self.active = 0
        self._lock = threading.Lock()
        # Idle guest threads sleep inside this code: end them before it is unmapped
        # (the finalizer holds ``loaded``, so its own unmapping finalizer runs later).
        self._retire = weakref.finalize(self, _retire_threads, self.thread_main, loaded)

    def call_stack(self, ctx: Any, word: Any, x86: bool, limit: int) -> list[int] | None:
        """The guest call stack at a trap (:func:`zjit.backends.backtrace.call_stack`)."""
        from ..backtrace import O2Code, call_stack

        if self.frames is None:
            start, end = self.loaded.code_range()
            self.frames = O2Code(start, end, self.obj)
        return call_stack(ctx, [self.frames], word, x86, limit)

    def enter(self) -> None:
        with self._lock:
            if self.loaded.closed:
                raise PolicyError("BAD_BACKEND", "the compiled code has been closed")
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def close(self) -> None:
        """Unmap the code (refused while a run is in progress)."""
        with self._lock:
            if self.active:
                raise RuntimeError("cannot close JIT code while it is running")
            self._retire()
            self.loaded.close()


def _retire_threads(routine: int, loaded: Any) -> None:
    thread.retire(routine)


class _Baseline:
    """Mapped baseline code (tiered code, :mod:`zjit.backends.tiering`): like
    :class:`CompiledCode`, idle guest threads that sleep in its runtime routines
    are ended before it is unmapped."""

    def __init__(self, loaded: Any, thread_main: int) -> None:
        self.loaded = loaded
        self.base = loaded.base
        self._retire = weakref.finalize(self, _retire_threads, loaded.base + thread_main, loaded)

    def close(self) -> None:
        """End the idle guest threads, then unmap the code."""
        self._retire()
        self.loaded.close()


class JitBackend(CompilingBackend):
    """Backend factory for native code (registry name ``"jit"``)."""

    name = "jit"
    triple = HOST_TRIPLE

    @staticmethod
    def available() -> bool:
        """True when native code can be loaded on this machine."""
        return HOST_SUPPORTED

    def measure_frames(self, obj: bytes) -> int:
        """:func:`.stack.frame_bound` of the object."""
        return stack.frame_bound(obj)

    def from_object(self, obj: bytes, info: CodeInfo) -> CompiledCode:
        """Load the object (memfd, W^X) and bind its entry points."""
        from .loader import load_object

        return CompiledCode(load_object(obj), info, obj)

    def release(self, code: Any) -> None:
        """Unmap one compiled module."""
        code.close()

    def map_baseline(self, image: Any) -> Any:
        """Map baseline code (memfd, W^X)."""
        from .loader import load_code

        return _Baseline(load_code(image.code, "baseline"), image.symbols[RT_THREAD_MAIN])

    def table_memory(self, count: int) -> tuple[Any, int]:
        """The function table and counters: a ctypes array in this process."""
        table = (ctypes.c_uint64 * count)()
        return table, ctypes.addressof(table)

    def map_function(self, baseline: Any, obj: bytes, symbol: str) -> tuple[int, Any]:
        """Load a tier-up object (memfd, W^X)."""
        from .loader import load_object

        loaded = load_object(obj)
        return loaded.symbol(symbol), loaded

    def release_mapping(self, handle: Any) -> None:
        """Unmap baseline code or a tier-up object."""
        handle.close()

    def run(self, program: VerifiedProgram, machine: Machine, code: Any, entry: Any,
            registers: list[int]) -> Outcome:
        """Run ``entry`` (the address of an entry function of ``code``) on a guest
        thread, serving its host requests on this one."""
        code.enter()
        try:
            run = _Run(program, machine, code, registers)
            try:
                return run.go(entry)
            finally:
                thread.release(run.guest)
        finally:
            code.leave()


class _Run(CodeRun):
    """A run in this process: guest memory and buffers are ctypes views."""

    code: Any  # CompiledCode, or TieredCode (zjit.backends.tiering)
    x86 = True

    def stack_word(self, address: int) -> int:
        """A word of the guest thread's stack, which the idle thread leaves alone
        below its own frames (only read after the run stopped, at a trap)."""
        stk = self.guest.stack
        if not stk.low <= address <= stk.base + stk.size - 8:
            raise ValueError(f"{address:#x} is outside the guest stack")
        return ctypes.c_uint64.from_address(address).value

    def bind(self) -> Ctx:
        need = self.stack_need(stack.RESERVE)
        try:
            self.guest = thread.acquire(self.code.thread_main, need)
        except (MemoryError, OSError) as exc:  # the mapping or pthread_create refused
            raise self.stack_error(need) from exc
        ctx = self.guest.reset()
        self.set_stack_limit(self.guest.stack.low, stack.RESERVE, ctx)
        mem = self.machine.memory
        self.membuf = (ctypes.c_char * len(mem)).from_buffer(mem)
        ctx.mem_base = ctypes.addressof(self.membuf)
        self.ro: ctypes.Array[ctypes.c_uint64] | None = None
        if self.machine.readonly:
            flat = [x for r in self.machine.readonly for x in r]
            self.ro = (ctypes.c_uint64 * len(flat))(*flat)
            ctx.ro_ranges = ctypes.addressof(self.ro)
        return ctx

    def bind_input(self, data: bytes) -> int:
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0

    def bind_output(self) -> tuple[int, int]:
        self.out = ctypes.create_string_buffer(OUT_BUFFER_BYTES)
        return ctypes.addressof(self.out), OUT_BUFFER_BYTES

    def host_functions(self) -> dict[str, int]:
        return {"host_call": self.code.host_request, **_C_FUNCTIONS}

    def release(self) -> None:
        del self.membuf  # release the export of machine.memory

    def call(self, entry: Any) -> int:
        """Start the run on the guest thread, serve it until it finishes, and
        return the entry's status."""
        if isinstance(entry, tuple):  # tiered code: the run entry and the entry id
            entry, self.ctx.run_id = entry
            self.ctx.ftab = self.code.table_address
        self.guest.go(entry)
        self.wait(hostcalls.server(self, self.guest.address))
        return int(self.ctx.run_status)


_C_FUNCTIONS = {
    "fn_memmove": ctypes.cast(ctypes.memmove, ctypes.c_void_p).value or 0,
    "fn_memset": ctypes.cast(ctypes.memset, ctypes.c_void_p).value or 0,
}
"""The C library functions generated code calls through the context."""
