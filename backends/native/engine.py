"""The native JIT engine (backend ``"jit"``): lift, lower, compile, load, run.

:class:`JitBackend.prepare` compiles a verified program once per code generation
variant (metered or not) and caches the machine code in memory (per backend) and
on disk (:class:`~zjit.backends.cache.CodeCache`; a hit imports neither llvmlite
nor the lowering). :meth:`JitExecutable.execute` fills a fresh context
(:class:`~zjit.backends.context.Ctx`) from the :class:`~zjit.machine.Machine`,
calls the entry point through ctypes (the GIL is released while guest code runs)
and copies registers, fuel, heap top and I/O positions back.

Runs are independent: every run has its own context and host-call state, so one
executable may run on many threads at once. Compiled code is unmapped when its
backend is closed or garbage-collected (never while a run is in progress).
"""

from __future__ import annotations

import ctypes
import struct
import threading
import time

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError
from zjit.isa import PRIM_NAMES, TrapKind
from zjit.machine import Machine, Outcome
from zjit.policy import Policy

from ..context import Ctx
from ..engine import (
    CodeInfo,
    CompilingBackend,
    VariantExecutable,
    ctx_outcome,
    ctx_to_machine,
    machine_to_ctx,
)
from ..targets import HOST_SUPPORTED, HOST_TRIPLE
from . import hostcalls, stack

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from typing import Any

ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
SP_FN = ctypes.CFUNCTYPE(ctypes.c_uint64)
OUT_BUFFER_BYTES = 64 << 10
"""Native output buffer per run (in-memory output only)."""
PAYLOAD_MAGIC = b"ZJITNAT1"
_PAYLOAD_HEAD = struct.Struct("<8sI")
_OUT_BIT = 1 << PRIM_NAMES.index("out")
_MEMORY_TRAPS = (TrapKind.OOB, TrapKind.WRITE_PROTECT)


class CompiledCode:
    """Machine code of one program variant, mapped and ready to call."""

    def __init__(self, loaded: Any, info: CodeInfo) -> None:
        self.loaded = loaded
        self.info = info
        self.entry_fns = {pc: ENTRY_FN(loaded.symbol(sym)) for pc, sym in info.entries.items()}
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

    def executable(self, program: VerifiedProgram, policy: Policy) -> JitExecutable:
        """A new executable of this backend."""
        return JitExecutable(self, program, policy)

    def from_object(self, obj: bytes, info: CodeInfo) -> CompiledCode:
        """Load the object (memfd, W^X) and bind its entry points."""
        from .loader import load_object

        return CompiledCode(load_object(obj), info)

    def release(self, code: Any) -> None:
        """Unmap one compiled module."""
        code.close()


class JitExecutable(VariantExecutable):
    """A verified program prepared for native execution under one policy."""

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` until RET on an empty call stack or a trap."""
        code: CompiledCode = self.code_for(machine)
        fn = code.entry_fns.get(entry_pc)
        if fn is None:
            raise ValueError(f"entry pc {entry_pc:#x} is neither the module entry nor an export")
        run = _Run(self.program, machine, code, registers)
        code.enter()
        try:
            return run.go(fn)
        finally:
            code.leave()


class _Run:
    """The context and host-call state of one run."""

    def __init__(self, program: VerifiedProgram, machine: Machine, code: CompiledCode,
                 registers: list[int]) -> None:
        self.machine = machine
        self.code = code
        ctx = self.ctx = Ctx()
        mem = machine.memory
        self.membuf = (ctypes.c_char * len(mem)).from_buffer(mem)
        ctx.mem_base = ctypes.addressof(self.membuf)
        machine_to_ctx(ctx, machine, registers)
        self.ro: ctypes.Array[ctypes.c_uint64] | None = None
        if machine.readonly:
            flat = [x for r in machine.readonly for x in r]
            self.ro = (ctypes.c_uint64 * len(flat))(*flat)
            ctx.ro_ranges = ctypes.addressof(self.ro)
        host = machine.host
        self.input = host.in_bytes
        if self.input is not None:
            ctx.in_mode = 0
            ctx.in_ptr = ctypes.cast(ctypes.c_char_p(self.input), ctypes.c_void_p).value
            ctx.in_len = len(self.input)
            ctx.in_pos = host.in_pos
        else:
            ctx.in_mode = 1
        out_buf = None
        if host.output_in_memory and program.prims_used & _OUT_BIT:
            out_buf = ctypes.create_string_buffer(OUT_BUFFER_BYTES)
            ctx.out_ptr = ctypes.addressof(out_buf)
            ctx.out_cap = OUT_BUFFER_BYTES
        for name, addr in hostcalls.ADDRESSES.items():
            setattr(ctx, name, addr)
        self.state = hostcalls.RunState(machine, ctx, out_buf)

    def interrupt(self) -> None:
        self.ctx.interrupt = 1

    def go(self, fn: Any) -> Outcome:
        machine, ctx = self.machine, self.ctx
        key = hostcalls.register(self.state)
        machine.add_interrupt_hook(self.interrupt)
        timer: threading.Timer | None = None
        try:
            if machine.timed_out():
                ctx.interrupt = 1
            elif machine.deadline is not None:
                timer = threading.Timer(max(0.0, machine.deadline - time.monotonic()), self.interrupt)
                timer.daemon = True
                timer.start()
            status = self._call(fn)
        finally:
            if timer is not None:
                timer.cancel()
            machine.remove_interrupt_hook(self.interrupt)
            hostcalls.unregister(key)
            self._copy_back()
        return self._outcome(status)

    def _call(self, fn: Any) -> int:
        """Call the entry with enough native stack for the guest's call depth."""
        info = self.code.info
        depth = self.machine.max_call_depth
        if info.call_depth_bound is not None:
            depth = min(depth, info.call_depth_bound)
        if info.call_depth_bound == 0:
            return int(fn(ctypes.addressof(self.ctx)))
        need = (depth + 2) * info.frame_bound + stack.CALLBACK_RESERVE
        bounds = stack.thread_stack()
        if bounds is not None and need <= self.code.stack_pointer() - bounds[0]:
            return self._call_here(fn, bounds[0])
        size = need + (1 << 20)
        if size > stack.MAX_THREAD_STACK:
            raise PolicyError(
                "BAD_POLICY",
                f"max_call_depth {self.machine.max_call_depth} needs about {need >> 20} MiB of native "
                f"stack ({info.frame_bound} bytes per call), more than the "
                f"{stack.MAX_THREAD_STACK >> 30} GiB the JIT allows",
                path="Policy.max_call_depth",
            )

        def on_thread() -> int:
            b = stack.thread_stack()
            return self._call_here(fn, b[0] if b is not None else 0)

        return stack.run_with_stack(size, on_thread)

    def _call_here(self, fn: Any, low: int) -> int:
        if low:
            self.ctx.stack_limit = low + stack.CALLBACK_RESERVE + self.code.info.frame_bound
        return int(fn(ctypes.addressof(self.ctx)))

    def _copy_back(self) -> None:
        machine, ctx = self.machine, self.ctx
        try:
            self.state.flush_output()
        finally:
            ctx_to_machine(ctx, machine, self.input is not None)
            del self.membuf  # release the export of machine.memory

    def _outcome(self, status: int) -> Outcome:
        return ctx_outcome(self.ctx, status, self.state.error, "native")
