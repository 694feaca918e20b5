"""Control emitters: block entry (interrupt poll, fuel), JR, RET, CALL, tail calls.

Guest functions become internal ``fastcc`` LLVM functions taking the context,
``%room`` (how many more guest calls may nest: ``max_depth`` minus the current
depth, so the CALL_DEPTH check is a compare with zero) and the guest state (five
registers, the CMP halves, fuel). They return the state variables they may modify
(:class:`~zjit.backends.llvm.function.RetLayout`: up to three, or eight on
aarch64, in registers, further registers through ``ctx.regs``; unmodified
variables keep the caller's values). Fuel lives in an SSA value inside a
function; it is passed to a callee as an argument and comes back through
``ctx.fuel`` (stored at RET, loaded after the call). A guest CALL is a native
call. Before it, ``room != 0`` is checked (CALL_DEPTH) and, for calls that are
part of a recursion, as a safety net, the native stack pointer against
``stack_limit`` (acyclic call chains have a static depth the engine sizes the
stack for). A callee that trapped has already written the trap record, whose
non-zero ``trap_kind`` the caller tests after the call before returning at once
itself. Control reaching another function's entry is a ``musttail`` call with
the same ``room``.

At a block entry, in this order: the interrupt poll (loop headers and entries of
functions that make calls or tail calls; TIMEOUT at the leader), then the fuel
charge (metered builds; FUEL at the leader with fuel unchanged), both before
anything of the block runs.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.isa import NUM_REGS, Family, TrapKind

from ..context import TRAP_STACK, reg_offset
from ..middle.ir import (
    CMPL,
    CMPR,
    Branch,
    Call,
    IRBlock,
    Jump,
    Ret,
    TailCall,
    Terminator,
    func_name,
    state_type,
)
from .emit_traps import TRAPPED_LABEL, guard
from .function import LIKELY, FnEmitter

_JR_PRED = {1: "eq", 2: "ne", 3: "slt", 4: "sle", 5: "sgt", 6: "sge",
            7: "ult", 8: "ule", 9: "ugt", 10: "uge"}

TermEmitter = Callable[[FnEmitter, Terminator], None]


def block_label(pc: int) -> str:
    """LLVM label of the IR block led by ``pc``."""
    return f"b{pc:x}"


def emit_block_entry(fe: FnEmitter, b: IRBlock) -> None:
    """Interrupt poll and fuel charge at the start of block ``b``."""
    if b.is_tail:
        return  # the callee checks and charges its own entry block
    regs = b.entry_state[:NUM_REGS]
    if b.check_interrupt and fe.opts.interrupts:
        flag, ok = fe.tmp("irq"), fe.tmp("c")
        fe.emit(f"{flag} = load volatile i64, ptr {fe.entry_ptr('interrupt')}, align 8")
        fe.emit(f"{ok} = icmp eq i64 {flag}, 0")
        guard(fe, ok, int(TrapKind.TIMEOUT), b.pc, regs)
    if fe.opts.fuel:
        # usub.with.overflow: the subtract sets the flag the branch tests.
        r, ovf, ok, left = fe.tmp("f"), fe.tmp("c"), fe.tmp("c"), fe.tmp("fuel")
        fe.intrinsic("declare {i64, i1} @llvm.usub.with.overflow.i64(i64, i64)")
        fe.emit(f"{r} = call {{i64, i1}} @llvm.usub.with.overflow.i64(i64 {fe.fuel}, i64 {b.cost})")
        fe.emit(f"{left} = extractvalue {{i64, i1}} {r}, 0")
        fe.emit(f"{ovf} = extractvalue {{i64, i1}} {r}, 1")
        fe.emit(f"{ok} = xor i1 {ovf}, true")
        guard(fe, ok, int(TrapKind.FUEL), b.pc, regs)  # fuel unchanged at the trap
        fe.fuel = left


def emit_jump(fe: FnEmitter, t: Terminator) -> None:
    """JR al, or falling into the next block."""
    assert isinstance(t, Jump)
    fe.emit(f"br label %{block_label(t.target)}{fe.loop_md(t.target)}")


def emit_branch(fe: FnEmitter, t: Terminator) -> None:
    """Conditional JR on the CMP halves (32-bit signed or unsigned compare)."""
    assert isinstance(t, Branch)
    c = fe.tmp("c")
    fe.emit(f"{c} = icmp {_JR_PRED[t.cond]} i32 {fe.val(t.lhs)}, {fe.val(t.rhs)}")
    md = fe.loop_md(t.taken) or fe.loop_md(t.fallthrough)
    fe.emit(f"br i1 {c}, label %{block_label(t.taken)}, label %{block_label(t.fallthrough)}{md}")


def _return_value(fe: FnEmitter, state: list[str]) -> str:
    """Build this function's return struct (its register-returned variables);
    store fuel and the spilled registers into the context."""
    items = [f"{state_type(v)} {state[v]}" for v in fe.layout.fields]
    if fe.opts.fuel:
        fe.emit(f"store i64 {fe.fuel}, ptr {fe.entry_ptr('fuel')}, align 8")
    for v in fe.layout.spilled:
        p = fe.tmp("p")
        fe.emit(f"{p} = getelementptr inbounds i8, ptr %ctx, i64 {reg_offset(v)}")
        fe.emit(f"store i64 {state[v]}, ptr {p}, align 8")
    cur = "poison"
    for i, item in enumerate(items):
        t = fe.tmp("s")
        fe.emit(f"{t} = insertvalue {fe.ret} {cur}, {item}, {i}")
        cur = t
    return cur


def emit_ret(fe: FnEmitter, t: Terminator) -> None:
    """RET: hand the modified state back to the caller (or the entry wrapper)."""
    assert isinstance(t, Ret)
    st = _return_value(fe, [fe.val(v) for v in t.state])
    fe.emit(f"ret {fe.ret} {st}")


def emit_call(fe: FnEmitter, t: Terminator) -> None:
    """CALL: depth check, stack guard, native call, status propagation."""
    assert isinstance(t, Call)
    ok = fe.tmp("c")
    fe.emit(f"{ok} = icmp ne i64 %room, 0")
    guard(fe, ok, int(TrapKind.CALL_DEPTH), t.pc, t.regs)
    if fe.opts.stack_guard and t.cyclic:
        sp, spi, sok = fe.tmp("sp"), fe.tmp("sp"), fe.tmp("c")
        fe.intrinsic("declare ptr @llvm.stacksave.p0()")
        fe.emit(f"{sp} = call ptr @llvm.stacksave.p0()")
        fe.emit(f"{spi} = ptrtoint ptr {sp} to i64")
        fe.emit(f"{sok} = icmp uge i64 {spi}, {fe.inv('stack_limit')}")
        guard(fe, sok, TRAP_STACK, t.pc, t.regs)
    d1, res, kind, good = fe.tmp("d"), fe.tmp("r"), fe.tmp("tk"), fe.tmp("c")
    fe.emit(f"{d1} = sub i64 %room, 1")
    args = ", ".join(
        [f"i64 {fe.val(v)}" for v in t.args[:NUM_REGS]]
        + [f"i32 {fe.val(t.args[CMPL])}", f"i32 {fe.val(t.args[CMPR])}", f"i64 {fe.fuel}"]
    )
    layout = fe.callee_layout(t.callee)
    rt = layout.type
    fe.emit(f"{res} = call fastcc {rt} @{func_name(t.callee)}(ptr %ctx, i64 {d1}, {args})")
    fe.emit(f"{kind} = load i64, ptr {fe.entry_ptr('trap_kind')}, align 8")
    fe.emit(f"{good} = icmp eq i64 {kind}, 0")
    cont = fe.label("ret")
    fe.needs_propagate = True
    fe.emit(f"br i1 {good}, label %{cont}, label %{TRAPPED_LABEL}, !prof {LIKELY}")
    fe.start(cont)
    dest = dict(zip(t.mods, t.dests, strict=True))
    for i, v in enumerate(layout.fields):
        fe.emit(f"{fe.dest(dest[v])} = extractvalue {rt} {res}, {i}")
    for v in layout.spilled:
        p = fe.tmp("p")
        fe.emit(f"{p} = getelementptr inbounds i8, ptr %ctx, i64 {reg_offset(v)}")
        fe.emit(f"{fe.dest(dest[v])} = load i64, ptr {p}, align 8")
    if fe.opts.fuel:
        f = fe.tmp("fuel")
        fe.emit(f"{f} = load i64, ptr {fe.entry_ptr('fuel')}, align 8")
        fe.fuel = f
    fe.emit(f"br label %{block_label(t.next)}{fe.loop_md(t.next)}")


def emit_tail_call(fe: FnEmitter, t: Terminator) -> None:
    """Continue in another function: a guaranteed tail call (same room, no
    checks; the callee's result, trap status and fuel are this function's).
    Functions linked by tail calls share one return layout (see the lifter)."""
    assert isinstance(t, TailCall)
    assert fe.callee_layout(t.callee) == fe.layout, "tail-call group with different return layouts"
    args = ", ".join(
        [f"i64 {fe.val(v)}" for v in t.args[:NUM_REGS]]
        + [f"i32 {fe.val(t.args[CMPL])}", f"i32 {fe.val(t.args[CMPR])}", f"i64 {fe.fuel}"]
    )
    res = fe.tmp("r")
    fe.emit(f"{res} = musttail call fastcc {fe.ret} @{func_name(t.callee)}(ptr %ctx, i64 %room, {args})")
    fe.emit(f"ret {fe.ret} {res}")


TERMINATORS: dict[type, TermEmitter] = {Jump: emit_jump, Branch: emit_branch, Ret: emit_ret, Call: emit_call,
                                        TailCall: emit_tail_call}
"""Terminator class -> emitter."""
CONTROL_OPS: frozenset[tuple[Family, str]] = frozenset(
    {(Family.CALL, "call"), (Family.RET, "ret"), (Family.JR, "jr")}
)
"""ISA operations lowered as terminators by this module."""
