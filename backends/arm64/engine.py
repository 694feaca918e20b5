"""The arm64 engine (backend ``"arm64"``): the JIT's AArch64 code, run in unicorn.

The program is lifted and lowered exactly as for the native JIT, with the
AArch64 triple, per variant (metered or not, memory size and read-only ranges
compiled in; :class:`~zjit.backends.native.engine.Variant`), compiled in the compile
worker, cached in memory and on disk like JIT code, linked at a fixed guest
address (:func:`~zjit.backends.objfile.linker.link_image`) and run on an emulated CPU
(:mod:`.arm64_emu`). The run context is the same structure as the JIT's; its
host function pointers lead to trampolines whose ``svc`` is handled here, in
Python, with the JIT's semantics (:mod:`.hostcalls`). So Results and final
memory match the interpreter and the JIT bit for bit.

Timeouts and :meth:`~zjit.machine.Machine.interrupt` set the context's
interrupt flag from another thread, so the generated code's own poll traps
TIMEOUT at the right block leader; only when that does not happen within
:data:`FORCE_STOP_AFTER` seconds is the CPU stopped from outside (then the
TIMEOUT is reported at the entry of the guest function that was running, with
the registers the run started with).

Use: ``zjit.Engine(policy, backend="arm64")``; see docs/arm64.md.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import threading
import time
from typing import Any

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError
from zjit.isa import MASK64, NUM_REGS, PRIM_NAMES, TrapKind, sext
from zjit.machine import Machine, Outcome
from zjit.policy import Policy

from ..engine import (
    CodeInfo,
    CompilingBackend,
    VariantExecutable,
    compile_program,
    ctx_outcome,
    ctx_to_machine,
    machine_to_ctx,
)
from ..objfile.linker import LinkedImage, link_image
from ..targets import AARCH64_TRIPLE
from . import emulator as emu_mod
from .emulator import CODE_BASE, OUT_BASE, OUT_BUFFER_BYTES, Emulator
from .runtime import HOST_FUNCS, frame_bound

FORCE_STOP_AFTER = 1.0
"""Seconds after an interrupt before the CPU is stopped from outside."""
STACK_RESERVE = 64 << 10
"""Stack kept below the guest frames (the stack guard trips before it is used)."""
MAX_STACK = 8 << 30
"""Largest emulated stack a run may ask for."""
_OUT_BIT = 1 << PRIM_NAMES.index("out")
_MEMORY_TRAPS = (TrapKind.OOB, TrapKind.WRITE_PROTECT)
_FUNC = re.compile(r"(?:f_|\w*entry_)([0-9a-f]+)$")


def _available() -> bool:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False
    return True


class Arm64Code:
    """One compiled variant: the object linked at CODE_BASE plus its metadata."""

    def __init__(self, obj: bytes, info: CodeInfo) -> None:
        self.info = info
        self.image: LinkedImage = link_image(obj, CODE_BASE)
        self.entries = {pc: self.image.symbols[sym] for pc, sym in info.entries.items()}
        starts = sorted((addr, int(m.group(1), 16)) for name, addr in self.image.symbols.items()
                        if (m := _FUNC.match(name)))
        self._starts = [a for a, _ in starts]
        self._pcs = [pc for _, pc in starts]

    def guest_function_at(self, address: int) -> int | None:
        """Guest pc of the function whose native code contains ``address``."""
        text = self.image.region("text")
        if text is None or not 0 <= address - CODE_BASE - text.offset < self.image.code_size:
            return None
        k = bisect.bisect_right(self._starts, address)
        return self._pcs[k - 1] if k else None


def measure_frames(obj: bytes) -> int:
    """:func:`~zjit.backends.arm64.runtime.frame_bound` of an AArch64 object."""
    from ..objfile import elf

    parsed = elf.parse_elf(obj)
    best = 0
    for sec in parsed.sections:
        if sec.flags & elf.SHF_EXECINSTR:
            funcs = [(s.value, s.size) for s in parsed.symbols if s.shndx == sec.index and s.type == elf.STT_FUNC]
            best = max(best, frame_bound(sec.data, funcs or [(0, len(sec.data))]))
    return best


class Arm64Backend(CompilingBackend):
    """Backend factory for AArch64 code run in unicorn (registry name ``"arm64"``)."""

    name = "arm64"
    triple = AARCH64_TRIPLE

    @staticmethod
    def available() -> bool:
        """True when unicorn can be imported."""
        return _available()

    def executable(self, program: VerifiedProgram, policy: Policy) -> Arm64Executable:
        """A new executable of this backend."""
        return Arm64Executable(self, program, policy)

    def compile(self, program: VerifiedProgram, opts: Any) -> tuple[bytes, CodeInfo]:
        """The JIT's lowering for AArch64, with the frame size measured on its code."""
        obj, info = compile_program(program, opts)
        return obj, dataclasses.replace(info, frame_bound=measure_frames(obj))

    def from_object(self, obj: bytes, info: CodeInfo) -> Arm64Code:
        """Link the object at the emulator's code base."""
        return Arm64Code(obj, info)

    def release(self, code: Any) -> None:
        """Forget the compiled code (idle emulators unbind it)."""
        emu_mod.forget(code)


class Arm64Executable(VariantExecutable):
    """A verified program prepared for the arm64 engine under one policy."""

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` until RET on an empty call stack or a trap."""
        code: Arm64Code = self.code_for(machine)
        entry = code.entries.get(entry_pc)
        if entry is None:
            raise ValueError(f"entry pc {entry_pc:#x} is neither the module entry nor an export")
        emu = emu_mod.acquire(code)
        try:
            return _Run(self.program, machine, code, emu, registers).go(entry)
        finally:
            emu_mod.release(emu)


class _Run:
    """One run on one emulator: context set-up, host calls, interrupts, results."""

    def __init__(self, program: VerifiedProgram, machine: Machine, code: Arm64Code, emu: Emulator,
                 registers: list[int]) -> None:
        self.machine, self.code, self.emu = machine, code, emu
        emu.bind_code(code, code.image)
        self.memory = emu.bind_memory(machine.memory)
        ro_table = emu.reset_ctx(machine.readonly)  # may replace emu.ctx
        ctx = self.ctx = emu.ctx
        ctx.ro_ranges = ro_table
        ctx.mem_base = emu_mod.MEM_BASE
        machine_to_ctx(ctx, machine, registers)
        host = machine.host
        self.input = host.in_bytes
        if self.input is not None:
            ctx.in_mode = 0
            ctx.in_ptr = emu.bind_input(self.input)
            ctx.in_len = len(self.input)
            ctx.in_pos = host.in_pos
        else:
            ctx.in_mode = 1
        self.buffered = host.output_in_memory and bool(program.prims_used & _OUT_BIT)
        if self.buffered:
            ctx.out_ptr = OUT_BASE
            ctx.out_cap = OUT_BUFFER_BYTES
        for name, addr in emu.functions.items():
            setattr(ctx, name, addr)
        self.error: BaseException | None = None
        self._state_lock = threading.Lock()
        self._running = False
        self._forced: threading.Timer | None = None
        self.stopped = False

    # -- interrupts ---------------------------------------------------------------------
    def interrupt(self) -> None:
        """Set the flag the generated code polls; stop the CPU if it does not react."""
        self.ctx.interrupt = 1
        with self._state_lock:
            if self._running and self._forced is None:
                self._forced = threading.Timer(FORCE_STOP_AFTER, self._force_stop)
                self._forced.daemon = True
                self._forced.start()

    def _force_stop(self) -> None:
        with self._state_lock:
            if self._running:
                self.stopped = True
                self.emu.stop()

    # -- host calls -------------------------------------------------------------------------
    def host_call(self, number: int, args: tuple[int, int, int, int, int]) -> int:
        """A trampoline's ``svc``: the JIT's host function ``number`` (0 = ok, 1 = the
        handler raised, which the generated code turns into a HOST trap)."""
        try:
            host, mem = self.machine.host, self.memory
            _ctx, a, b, c, d = args
            name = HOST_FUNCS[number]
            if name == "host_in":
                data = host.read(b)
                if len(data) > b:
                    raise ValueError(f"input handler returned {len(data)} bytes for a read of {b}")
                mem[a:a + len(data)] = data
                self.ctx.host_result = len(data)
            elif name == "host_out":
                self.flush_output()
                host.write(bytes(mem[a:a + b]))
            elif name == "host_log":
                host.log(bytes(mem[a:a + b]), bytes(mem[c:c + d]))
            else:
                value, data = host.ctl(bytes(mem[a:a + b]), d)
                if not isinstance(value, int) or len(data) > d:
                    raise ValueError("control handler result is malformed")
                mem[c:c + len(data)] = data
                self.ctx.host_result = sext(value & MASK64, 64)
            return 0
        except BaseException as exc:  # noqa: BLE001 - nothing may cross the emulated frames
            if self.error is None:
                self.error = exc
            return 1

    def flush_output(self) -> None:
        """Hand the bytes pending in the output buffer to the host."""
        n = self.ctx.out_len
        if n and self.buffered:
            data = self.emu.out.raw[:n]
            self.ctx.out_len = 0
            self.machine.host.write(data)

    # -- the run ------------------------------------------------------------------------------
    def _stack(self) -> None:
        info, depth = self.code.info, self.machine.max_call_depth
        if info.call_depth_bound is not None:
            depth = min(depth, info.call_depth_bound)
        need = (depth + 2) * info.frame_bound + 2 * STACK_RESERVE
        if need > MAX_STACK:
            raise PolicyError(
                "BAD_POLICY",
                f"max_call_depth {self.machine.max_call_depth} needs about {need >> 20} MiB of emulated "
                f"stack ({info.frame_bound} bytes per call), more than the {MAX_STACK >> 30} GiB allowed",
                path="Policy.max_call_depth",
            )
        low = self.emu.ensure_stack(need)
        self.ctx.stack_limit = low + STACK_RESERVE + info.frame_bound

    def go(self, entry: int) -> Outcome:
        machine, ctx, emu = self.machine, self.ctx, self.emu
        self._stack()
        emu.handler = self.host_call
        machine.add_interrupt_hook(self.interrupt)
        timer: threading.Timer | None = None
        status = None
        try:
            with self._state_lock:
                self._running = True
            if machine.timed_out():
                ctx.interrupt = 1
            elif machine.deadline is not None:
                timer = threading.Timer(max(0.0, machine.deadline - time.monotonic()), self.interrupt)
                timer.daemon = True
                timer.start()
            status = emu.run(entry)
        except RuntimeError:
            if not self.stopped:
                raise
        finally:
            with self._state_lock:
                self._running = False
                forced, self._forced = self._forced, None
            for t in (timer, forced):
                if t is not None:
                    t.cancel()
            machine.remove_interrupt_hook(self.interrupt)
            emu.handler = None
            self._copy_back()
        if self.stopped and (status is None or emu.pc() != emu_mod.SENTINEL):
            return self._stopped_outcome()
        assert status is not None
        return self._outcome(status)

    def _copy_back(self) -> None:
        machine, ctx = self.machine, self.ctx
        try:
            self.flush_output()
        finally:
            ctx_to_machine(ctx, machine, self.input is not None)
            self.emu.copy_back(machine.memory)

    def _stopped_outcome(self) -> Outcome:
        """TIMEOUT after an outside stop: the entry pc of the running function (of
        the caller when the CPU was in the runtime page, a leaf routine)."""
        pc = self.code.guest_function_at(self.emu.pc())
        if pc is None:
            pc = self.code.guest_function_at(self.emu.lr())
        regs = [int(self.ctx.regs[i]) for i in range(NUM_REGS)]
        return Outcome(regs, TrapKind.TIMEOUT, pc if pc is not None else 0)

    def _outcome(self, status: int) -> Outcome:
        return ctx_outcome(self.ctx, status, self.error, "emulated")
