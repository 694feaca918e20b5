"""One run of compiled code: the part of a run both compiling engines share.

A :class:`CodeRun` fills the run context (:mod:`.context`) from the
:class:`~zjit.machine.Machine`, starts the code and waits for it in
:meth:`CodeRun.wait` (the thread that called ``run()`` stays in Python while
guest code runs elsewhere, so the deadline, :meth:`~zjit.machine.Machine.interrupt`
and signal handlers reach the context's interrupt flag), serves the host calls
the generated code makes (:meth:`CodeRun.host_call`, the same semantics on
every engine), flushes buffered output and copies fuel, heap top and input
position back. Engines subclass it and fill in the hooks:

* :meth:`~CodeRun.bind` (a context whose guest memory and read-only table are
  in place), :meth:`~CodeRun.bind_input`, :meth:`~CodeRun.bind_output` and
  :meth:`~CodeRun.host_functions`: where things live for the code;
* :meth:`~CodeRun.attach`/:meth:`~CodeRun.detach` around the call,
  :meth:`~CodeRun.call` the call itself (it waits with :meth:`CodeRun.wait`),
  :meth:`~CodeRun.release` after the copy-back.

The stack a run needs is :meth:`CodeRun.stack_need`: one frame per level of
guest call nesting (clamped to the code's own deepest nesting) plus the entry's.
"""

from __future__ import annotations

import time

from zjit.verifier import VerifiedProgram

from zjit.errors import PolicyError
from zjit.isa import MASK64, NUM_REGS, PRIM_NAMES, TrapKind, sext
from zjit.machine import Machine, Outcome, OutputLimitError, keep_frames

from .context import HOST_OPS, HOST_TIERUP, STATUS_OK, TRAP_OUTPUT_LIMIT, TRAP_SITE, TRAP_STACK, Ctx

TYPE_CHECKING = False  # no typing import at run time (start-up, docs/startup.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

POLL = 0.05
"""Seconds the waiting thread sleeps at most before it looks at the deadline
(and runs pending signal handlers)."""
_IN, _OUT, _LOG, _CTL = (HOST_OPS[k] for k in ("in", "out", "log", "ctl"))

_OUT_BIT = 1 << PRIM_NAMES.index("out")
_MEMORY_TRAPS = (TrapKind.OOB, TrapKind.WRITE_PROTECT)


class CodeRun:
    """The context and host-call state of one run of compiled code."""

    stack_kind = "native"
    """How the stack is described in errors (``native``, ``emulated``)."""

    def __init__(self, program: VerifiedProgram, machine: Machine, code: Any, registers: list[int]) -> None:
        self.machine = machine
        self.code = code
        self.error: BaseException | None = None
        """The first exception a host handler raised (the run then trapped HOST)."""
        self.memory: bytearray | memoryview = machine.memory
        """Guest memory as host calls read and write it (:meth:`bind` may replace it)."""
        self.out: Any = None
        """The output buffer (a ctypes char array) when output is buffered."""
        ctx = self.ctx = self.bind()
        machine_to_ctx(ctx, machine, registers)
        host = machine.host
        self.input = host.in_bytes
        if self.input is not None:
            ctx.in_mode = 0
            ctx.in_ptr = self.bind_input(self.input)
            ctx.in_len = len(self.input)
            ctx.in_pos = host.in_pos
        else:
            ctx.in_mode = 1
        if host.output_in_memory and program.prims_used & _OUT_BIT:
            ctx.out_ptr, ctx.out_cap = self.bind_output()
        for name, addr in self.host_functions().items():
            setattr(ctx, name, addr)

    # -- hooks -------------------------------------------------------------------------
    def bind(self) -> Ctx:
        """A zeroed context with ``mem_base`` and ``ro_ranges`` set for the code."""
        raise NotImplementedError

    def bind_input(self, data: bytes) -> int:
        """The address of in-memory input as the code sees it."""
        raise NotImplementedError

    def bind_output(self) -> tuple[int, int]:
        """Set :attr:`out` to an output buffer; its address for the code and its size."""
        raise NotImplementedError

    def host_functions(self) -> dict[str, int]:
        """Context field -> address of the function the code calls through it."""
        raise NotImplementedError

    def attach(self) -> None:
        """Before the call (stack sizing, making host calls reach this run)."""

    def call(self, entry: Any) -> int | None:
        """Run the code from ``entry``: its status (None: stopped from outside)."""
        raise NotImplementedError

    def running(self, flag: bool) -> None:
        """The call starts (``True``) or has ended (``False``)."""

    def detach(self) -> None:
        """Undo :meth:`attach` once the code has returned."""

    def release(self) -> None:
        """After the copy-back: drop what the run held of guest memory."""

    # -- the run -----------------------------------------------------------------------
    def interrupt(self) -> None:
        """Set the flag the generated code polls (callable from any thread)."""
        self.ctx.interrupt = 1

    def go(self, entry: Any) -> Outcome:
        """Run from ``entry`` with the deadline and interrupts wired up; the Outcome."""
        machine, ctx = self.machine, self.ctx
        self.attach()
        machine.add_interrupt_hook(self.interrupt)
        status = None
        try:
            self.running(True)
            if machine.timed_out():
                ctx.interrupt = 1
            status = self.call(entry)
        finally:
            self.running(False)
            machine.remove_interrupt_hook(self.interrupt)
            self.detach()
            self.copy_back()
        return self.outcome(status)

    def wait(self, step: Callable[[float], bool]) -> None:
        """Wait for the guest: ``step(timeout)`` waits at most ``timeout`` seconds
        (serving what the guest asks for) and returns True once it has stopped.
        Past the deadline the guest is interrupted. An exception raised while
        waiting (a signal handler's) interrupts the guest too and is raised once
        it has stopped: the guest is never left running."""
        deadline = self.machine.deadline
        pending: BaseException | None = None
        while True:
            try:
                timeout = POLL
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.interrupt()
                        deadline = None
                    else:
                        timeout = min(timeout, left)
                if step(timeout):
                    break
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                self.interrupt()
                if pending is None:
                    pending = exc
        if pending is not None:
            raise pending

    def copy_back(self) -> None:
        """Flush buffered output, then copy fuel, heap top and input position back."""
        try:
            self.flush_output()
        finally:
            ctx_to_machine(self.ctx, self.machine, self.input is not None)
            self.release()

    def outcome(self, status: int | None) -> Outcome:
        """The Outcome of a call that returned ``status`` (at a trap, with the
        guest call stack walked from the native one, where the code allows)."""
        assert status is not None
        calls = None
        if status != STATUS_OK:
            calls = self.call_stack()
            if self.ctx.trap_kind == TRAP_SITE:
                self.code.decode_trap(self.ctx)  # baseline code: the stub's site says what trapped
            if self.ctx.trap_kind == TRAP_OUTPUT_LIMIT:
                # the code's own budget check of an OUT (emit_prims.charge_output)
                self.ctx.trap_kind = int(TrapKind.HOST)
                self.error = OutputLimitError(self.machine.host.limit)
        out = ctx_outcome(self.ctx, status, self.error, self.stack_kind)
        if out.trap is not None and calls is not None:
            calls.reverse()
            out.backtrace, out.omitted = keep_frames(calls)
        return out

    def call_stack(self) -> list[int] | None:
        """The pcs of the active guest CALLs at a trap, innermost first, or None
        when this code cannot tell (read before the trap record is decoded)."""
        walk = getattr(self.code, "call_stack", None)
        if walk is None:
            return None
        try:
            result: list[int] | None = walk(self.ctx, self.stack_word, self.x86, self.machine.max_call_depth)
        except ValueError:  # a frame pointed outside the stack: not a frame we know
            return None
        return result

    x86 = False
    """The code is x86-64 (its stack layout is the one :meth:`call_stack` walks)."""

    def stack_word(self, address: int) -> int:
        """The 8-byte word at ``address`` of the guest's native (or emulated) stack."""
        raise NotImplementedError

    # -- stack -------------------------------------------------------------------------
    def stack_need(self, reserve: int) -> int:
        """Bytes of stack the call may use: ``depth + 4`` frames (one per nested
        guest call, ``depth`` being the policy's limit or the code's deepest
        nesting, whichever is smaller; the entry's function and the runtime's
        frames) plus ``reserve``."""
        info = self.code.info
        depth = self.machine.max_call_depth
        if info.call_depth_bound is not None:
            depth = min(depth, info.call_depth_bound)
        return int((depth + 4) * info.frame_bound + reserve)

    def stack_error(self, need: int) -> MemoryError:
        """The error for a run whose ``need`` bytes of stack cannot be had: the policy
        is valid (every engine runs ``max_call_depth`` 2**20), the system refused."""
        return MemoryError(
            f"max_call_depth {self.machine.max_call_depth} needs about {need >> 20} MiB of {self.stack_kind} "
            f"stack ({self.code.info.frame_bound} bytes per call), which could not be reserved")

    def set_stack_limit(self, low: int, reserve: int, ctx: Any = None) -> None:
        """Let guest calls go down to ``reserve`` bytes (and one frame) above ``low``."""
        (self.ctx if ctx is None else ctx).stack_limit = low + reserve + self.code.info.frame_bound

    # -- host calls --------------------------------------------------------------------
    def host_call(self, op: int, a: int, b: int, c: int, d: int) -> int:
        """The generated code's ``host_call(ctx, op, a, b, c, d)``: 0 when done, 1
        when a handler raised (kept in :attr:`error`; the generated code then
        traps HOST at the primitive, which has had no effect). Spans have been
        checked by the generated code. Nothing may propagate into the code's
        frames, so every exception is caught here."""
        try:
            host, mem = self.machine.host, self.memory
            if op == _IN:  # (dst, cap)
                data = host.read(b)
                if len(data) > b:
                    raise ValueError(f"input handler returned {len(data)} bytes for a read of {b}")
                mem[a:a + len(data)] = data
                self.ctx.host_result = len(data)
            elif op == _OUT:  # (src, len): the code has charged it to out_room
                self.flush_output()
                host.write(bytes(mem[a:a + b]), charged=True)
            elif op == _LOG:  # (topic, topic_len, msg, msg_len): charged here
                view = memoryview(mem)
                if host.output_in_memory:  # captured output and log share the budget
                    host.room = self.ctx.out_room
                    try:
                        host.log(view[a:a + b], view[c:c + d])
                    finally:
                        self.ctx.out_room = host.room
                else:
                    host.log(view[a:a + b], view[c:c + d])
            elif op == _CTL:  # (req, req_len, resp, resp_cap)
                value, data = host.ctl(bytes(mem[a:a + b]), d)
                if not isinstance(value, int) or len(data) > d:
                    raise ValueError("control handler result is malformed")
                mem[c:c + len(data)] = data
                self.ctx.host_result = sext(value & MASK64, 64)
            elif op == HOST_TIERUP:  # (entry id): baseline code found an entry hot
                self.code.request(a)
            else:
                raise ValueError(f"unknown host call {op}")
            return 0
        except BaseException as exc:  # noqa: BLE001 - nothing may cross the code's frames
            if self.error is None:
                self.error = exc
            return 1

    def flush_output(self) -> None:
        """Hand the bytes pending in the output buffer to the host."""
        n = self.ctx.out_len
        if n and self.out is not None:
            data = self.out.raw[:n]
            self.ctx.out_len = 0
            self.machine.host.write(data, charged=True)  # out_room was charged as it was appended


# --- machine state <-> context ----------------------------------------------------------


def machine_to_ctx(ctx: Any, machine: Machine, registers: list[int]) -> None:
    """Copy memory size, read-only summary, call-depth limit, fuel, registers and
    heap top into ``ctx`` (memory, read-only table and I/O pointers are the engine's)."""
    ctx.mem_size = len(machine.memory)
    if machine.readonly:
        ctx.ro_count = len(machine.readonly)
        ctx.ro_lo = min(r[0] for r in machine.readonly)
        ctx.ro_hi = max(r[1] for r in machine.readonly)
    ctx.max_depth = machine.max_call_depth
    if machine.fuel is not None:
        ctx.fuel = machine.fuel  # 0 ..= 2**64-1 (Policy, run(fuel=))
    for i in range(NUM_REGS):
        ctx.regs[i] = registers[i] & MASK64
    ctx.heap_top = machine.heap_top
    # The output budget (SANDBOX-CRITICAL, issue 13): the code charges every OUT to
    # out_room and traps OUTPUT_LIMIT past it; LOG host calls share it while output
    # is captured. Output to a stream is not counted: the code's room is then unbounded.
    host = machine.host
    ctx.out_room = host.room if host.output_in_memory else MASK64


def ctx_to_machine(ctx: Any, machine: Machine, input_in_memory: bool) -> None:
    """Copy fuel left, heap top, the in-memory input position and the output budget back."""
    if machine.fuel is not None:
        machine.fuel = ctx.fuel
    machine.heap_top = ctx.heap_top
    host = machine.host
    if input_in_memory:
        host.in_pos = ctx.in_pos
    if host.output_in_memory:
        host.room = ctx.out_room


def ctx_outcome(ctx: Any, status: int, host_error: BaseException | None, stack_kind: str) -> Outcome:
    """The run's Outcome from the context's trap record. A host handler's
    non-Exception (KeyboardInterrupt, SystemExit) is re-raised; the stack guard
    firing means the engine's frame sizing was wrong (BAD_POLICY, never a crash)."""
    regs = [int(ctx.regs[i]) for i in range(NUM_REGS)]
    if status == STATUS_OK:
        return Outcome(regs)
    kind_code = int(ctx.trap_kind)
    if kind_code == TRAP_STACK:
        raise PolicyError("BAD_POLICY", f"the {stack_kind} stack guard fired: the engine's stack sizing "
                          "underestimated this program's frames", pc=int(ctx.trap_pc))
    kind = TrapKind(kind_code)
    cause = host_error if kind is TrapKind.HOST else None
    if cause is not None and not isinstance(cause, Exception):
        raise cause
    if kind in _MEMORY_TRAPS:
        return Outcome(regs, kind, int(ctx.trap_pc), int(ctx.trap_addr), int(ctx.trap_len))
    return Outcome(regs, kind, int(ctx.trap_pc), cause=cause)
