"""The native engine (backend ``"jit"``): lift, lower, compile, load, run.

:class:`JitBackend` compiles a verified program for the host (through the
shared :class:`~zjit.backends.engine.CompilingBackend`: once per
:class:`~zjit.machine.Specialisation`, cached in memory and on disk; a cache
hit imports neither llvmlite nor the lowering) and maps the object with the
W^X loader (:mod:`.loader`). A run (:class:`_Run`) fills a fresh context
(:class:`~zjit.backends.context.Ctx`) from the machine, calls the entry point
through ctypes (the GIL is released while guest code runs) with enough native
stack (:mod:`.stack`), and copies registers, fuel, heap top and I/O positions
back; host calls come back through the ctypes callbacks of :mod:`.hostcalls`.

Runs are independent: every run has its own context and host-call state, so one
executable may run on many threads at once. Compiled code is unmapped when its
backend is closed or garbage-collected (never while a run is in progress).
"""

from __future__ import annotations

import ctypes
import threading

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError
from zjit.machine import Machine, Outcome

from ..context import Ctx
from ..engine import CodeInfo, CompilingBackend
from ..run import CodeRun
from ..targets import HOST_SUPPORTED, HOST_TRIPLE
from . import hostcalls, stack

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
SP_FN = ctypes.CFUNCTYPE(ctypes.c_uint64)
OUT_BUFFER_BYTES = 64 << 10
"""Native output buffer per run (in-memory output only)."""


class CompiledCode:
    """Machine code of one specialisation, mapped and ready to call."""

    def __init__(self, loaded: Any, info: CodeInfo) -> None:
        self.loaded = loaded
        self.info = info
        self.entries = {pc: ENTRY_FN(loaded.symbol(sym)) for pc, sym in info.entries.items()}
        self.stack_pointer = SP_FN(loaded.symbol(info.stack_symbol))
        self.active = 0
        self._lock = threading.Lock()

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

        return CompiledCode(load_object(obj), info)

    def release(self, code: Any) -> None:
        """Unmap one compiled module."""
        code.close()

    def run(self, program: VerifiedProgram, machine: Machine, code: Any, entry: Any,
            registers: list[int]) -> Outcome:
        """Call ``entry`` (an entry function of ``code``) on this thread or, when
        its stack is too small for the guest's call depth, on a new one."""
        run = _Run(program, machine, code, registers)
        code.enter()
        try:
            return run.go(entry)
        finally:
            code.leave()


class _Run(CodeRun):
    """A run in this process: guest memory and buffers are ctypes views."""

    code: CompiledCode

    def bind(self) -> Ctx:
        ctx = Ctx()
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
        return hostcalls.ADDRESSES

    def attach(self) -> None:
        self._key = hostcalls.register(self)

    def detach(self) -> None:
        hostcalls.unregister(self._key)

    def release(self) -> None:
        del self.membuf  # release the export of machine.memory

    def call(self, entry: Any) -> int:
        """Call the entry with enough native stack for the guest's call depth."""
        info = self.code.info
        if info.call_depth_bound == 0:
            return int(entry(ctypes.addressof(self.ctx)))
        need = self.stack_need(stack.CALLBACK_RESERVE)
        bounds = stack.thread_stack()
        if bounds is not None and need <= self.code.stack_pointer() - bounds[0]:
            return self._call_here(entry, bounds[0])

        def on_thread() -> int:
            b = stack.thread_stack()
            return self._call_here(entry, b[0] if b is not None else 0)

        try:
            return stack.run_with_stack(need + (1 << 20), on_thread)
        except stack.NoStack as exc:
            raise self.stack_error(need) from exc

    def _call_here(self, entry: Any, low: int) -> int:
        if low:
            self.set_stack_limit(low, stack.CALLBACK_RESERVE)
        return int(entry(ctypes.addressof(self.ctx)))
