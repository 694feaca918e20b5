"""Control emitters: block entry (interrupt poll, fuel), JR, RET, CALL, tail calls.

Guest functions follow the guest calling convention of :mod:`.abi`: they take
the state tuple S (ctx, mem, room, the five registers, packed CMP, fuel) and
return it (x86-64: all of it; aarch64: without ctx and mem), values the
function did not change passed through as they came. ``room`` is how many more
guest calls may nest (``max_depth`` minus the current depth), so the
CALL_DEPTH check is a compare with zero.

A guest CALL is a native call: ``room != 0`` is checked at the call site
(CALL_DEPTH at the CALL, registers before it) and, for calls that are part of a
recursion, the native stack pointer against ``stack_limit`` (acyclic call chains
have a static depth the engine sizes the stack for); the callee gets
``room - 1``. After the call the caller continues with what the callee returned
(registers, CMP, fuel, and on x86-64 ctx and mem; ``room`` is the returned one
plus one), so nothing of the caller is live across the call. Nothing is tested
after a call: a trap leaves the run without returning (:mod:`.emit_traps`).
Control reaching another function's entry is a ``musttail`` call with the same
``room``.

At a block entry, in this order: the interrupt poll (loop headers and entries of
functions on a cycle of calls or tail calls; TIMEOUT at the leader), then the
fuel charge (metered builds; FUEL at the leader with fuel unchanged), both before
anything of the block runs.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.isa import NUM_REGS, Family, TrapKind

from ..context import TRAP_STACK
from ..middle.ir import (
    CMPL,
    CMPR,
    FAST,
    GUARD,
    TAIL,
    Branch,
    Call,
    Countdown,
    IRBlock,
    Jump,
    Operand,
    Ret,
    TailCall,
    Terminator,
    func_name,
)
from . import call_sites
from .abi import CMP, CTX, FUEL, MEM, REG0, ROOM
from .emit_traps import guard
from .function import FnEmitter

_JR_PRED = {1: "eq", 2: "ne", 3: "slt", 4: "sle", 5: "sgt", 6: "sge",
            7: "ult", 8: "ule", 9: "ugt", 10: "uge"}

TermEmitter = Callable[[FnEmitter, Terminator], None]


def block_label(pc: int) -> str:
    """LLVM label of the IR block led by ``pc``."""
    return f"b{pc:x}"


def emit_block_entry(fe: FnEmitter, b: IRBlock) -> None:
    """Interrupt poll and fuel charge at the start of block ``b``.

    In a versioned loop's fast copy the guard has polled and has checked that
    the fuel pays for the whole chunk: nothing is tested, and the fuel stays
    exact (wherever the copy traps or leaves) as the fuel at the start of the
    iteration minus what the blocks of the iteration have used so far. So the
    iterations chain one subtraction, however many blocks they run. Guards and
    chunk tails are no guest blocks: nothing to poll or charge."""
    if b.is_tail or b.kind in (GUARD, TAIL):
        return  # the callee checks and charges its own entry block; no guest block
    if b.kind == FAST:
        if fe.opts.fuel:
            head = fe.fast_header[b.pc]
            if b.pc == head:
                fe.fast_fuel[head] = fe.fuel
                used = str(b.cost)
            else:
                used = fe.tmp("used")
                fe.emit(f"{used} = add i64 {fe.st['acc']}, {b.cost}")
            fe.st["acc"] = used
            left = fe.tmp("fuel")
            fe.emit(f"{left} = sub i64 {fe.fast_fuel[head]}, {used}")
            fe.fuel = left
        return
    regs = b.entry_state[:NUM_REGS]
    if b.check_interrupt and fe.opts.interrupts:
        flag, ok = fe.tmp("irq"), fe.tmp("c")
        fe.emit(f"{flag} = load volatile i64, ptr {fe.field_ptr('interrupt')}, align 8")
        fe.emit(f"{ok} = icmp eq i64 {flag}, 0")
        guard(fe, ok, int(TrapKind.TIMEOUT), b.leader, regs)
    if fe.opts.fuel:
        # usub.with.overflow: the subtract sets the flag the branch tests.
        r, ovf, ok, left = fe.tmp("f"), fe.tmp("c"), fe.tmp("c"), fe.tmp("fuel")
        fe.intrinsic("declare {i64, i1} @llvm.usub.with.overflow.i64(i64, i64)")
        fe.emit(f"{r} = call {{i64, i1}} @llvm.usub.with.overflow.i64(i64 {fe.fuel}, i64 {b.cost})")
        fe.emit(f"{left} = extractvalue {{i64, i1}} {r}, 0")
        fe.emit(f"{ovf} = extractvalue {{i64, i1}} {r}, 1")
        fe.emit(f"{ok} = xor i1 {ovf}, true")
        # The trap reports the fuel unchanged, computed back from what is left
        # (wrapped): so only one copy of the fuel is live at the branch.
        back = fe.tmp("fuel")
        fe.emit(f"{back} = add i64 {left}, {b.cost}")
        fe.fuel = back
        guard(fe, ok, int(TrapKind.FUEL), b.leader, regs)
        fe.fuel = left


def emit_countdown(fe: FnEmitter, t: Terminator) -> None:
    """The end of an iteration of a fast copy: one iteration of the chunk done;
    the next one, or the loop's exit test when the chunk is over."""
    assert isinstance(t, Countdown)
    left, more = fe.tmp("cnt"), fe.tmp("c")
    fe.emit(f"{left} = sub i64 {fe.st['cnt']}, 1")
    fe.emit(f"{more} = icmp ne i64 {left}, 0")
    fe.st["cnt"] = left
    fe.emit(f"br i1 {more}, label %{block_label(t.next)}, label %{block_label(t.done)}{fe.loop_md(t.next)}")


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


def state_args(fe: FnEmitter, state: list[Operand], room: str, callee: int) -> str:
    """The argument list passing S with guest state ``state`` (registers, CMP
    halves) to ``callee`` (CMP ``undef`` when the callee never reads it)."""
    regs = ", ".join(f"i64 {fe.val(v)}" for v in state[:NUM_REGS])
    known = fe.functions.get(callee)
    cmp = fe.pack_cmp(state[CMPL], state[CMPR]) if known is None or known.cmp_read else "undef"
    return f"ptr {fe.ctx}, ptr {fe.mem()}, i64 {room}, {regs}, i64 {cmp}, i64 {fe.fuel}"


def _return_value(fe: FnEmitter, state: list[Operand]) -> str:
    """This function's return struct: S as it is now (CMP ``undef`` when no
    caller reads it)."""
    cmp = fe.pack_cmp(state[CMPL], state[CMPR]) if fe.fn.cmp_returned else "undef"
    values = {CTX: f"ptr {fe.ctx}", MEM: f"ptr {fe.mem()}", ROOM: f"i64 {fe.room}",
              CMP: f"i64 {cmp}", FUEL: f"i64 {fe.fuel}"}
    values.update({REG0 + i: f"i64 {fe.val(state[i])}" for i in range(NUM_REGS)})
    cur = "poison"
    for i, pos in enumerate(fe.abi.ret_fields):
        t = fe.tmp("s")
        fe.emit(f"{t} = insertvalue {fe.abi.ret} {cur}, {values[pos]}, {i}")
        cur = t
    return cur


def emit_ret(fe: FnEmitter, t: Terminator) -> None:
    """RET: hand S back to the caller (or the entry body)."""
    assert isinstance(t, Ret)
    st = _return_value(fe, t.state)
    fe.emit(f"ret {fe.abi.ret} {st}")


def callee_ref(fe: FnEmitter, callee: int) -> str:
    """How to call guest function ``callee``: ``@f_<pc>`` inside the module, else
    the code address in its function table slot (``ctx.ftab``, tier-up objects)."""
    if callee in fe.functions or fe.ftab_ids is None:
        return f"@{func_name(callee)}"
    p, f = fe.tmp("p"), fe.tmp("f")
    fe.emit(f"{p} = getelementptr inbounds i8, ptr {fe.inv('ftab')}, i64 {8 * fe.ftab_ids[callee]}")
    fe.emit(f"{f} = load ptr, ptr {p}, align 8")
    return f


def emit_call(fe: FnEmitter, t: Terminator) -> None:
    """CALL: depth check, stack guard (recursion), native call; then continue
    with the state the callee returned."""
    assert isinstance(t, Call)
    ok = fe.tmp("c")
    fe.emit(f"{ok} = icmp ne i64 {fe.room}, 0")
    guard(fe, ok, int(TrapKind.CALL_DEPTH), t.pc, t.regs)
    if fe.opts.stack_guard and t.cyclic:
        sp, spi, sok = fe.tmp("sp"), fe.tmp("sp"), fe.tmp("c")
        fe.intrinsic("declare ptr @llvm.stacksave.p0()")
        fe.emit(f"{sp} = call ptr @llvm.stacksave.p0()")
        fe.emit(f"{spi} = ptrtoint ptr {sp} to i64")
        fe.emit(f"{sok} = icmp uge i64 {spi}, {fe.inv('stack_limit')}")
        guard(fe, sok, TRAP_STACK, t.pc, t.regs)
    d1, res = fe.tmp("d"), fe.tmp("r")
    fe.emit(f"{d1} = sub i64 {fe.room}, 1")
    abi = fe.abi
    callee = callee_ref(fe, t.callee)
    dbg = "" if fe.dbg is None else call_sites.location(fe.dbg, t.pc)
    fe.emit(f"{res} = call {abi.cc} {abi.ret} {callee}({state_args(fe, t.args, d1, t.callee)}){dbg}")

    def field(pos: int, hint: str) -> str:
        idx = abi.ret_index(pos)
        assert idx is not None
        v = fe.tmp(hint)
        fe.emit(f"{v} = extractvalue {abi.ret} {res}, {idx}")
        return v

    dest = dict(zip(t.mods, t.dests, strict=True))
    for i in range(NUM_REGS):
        if i in dest:
            fe.emit(f"{fe.dest(dest[i])} = extractvalue {abi.ret} {res}, {abi.ret_index(REG0 + i)}")
    if CMPL in dest or CMPR in dest:
        packed = field(CMP, "cmp")
        fe.unpack_cmp(packed, fe.dest(dest[CMPL]) if CMPL in dest else None,
                      fe.dest(dest[CMPR]) if CMPR in dest else None)
    room = fe.tmp("room")
    fe.emit(f"{room} = add i64 {field(ROOM, 'room')}, 1")
    new = {"room": room}
    if abi.returns_ctx:
        new["ctx"], new["mem"] = field(CTX, "ctx"), field(MEM, "mem")
    if fe.opts.fuel:
        new["fuel"] = field(FUEL, "fuel")
    fe.rebind(**new)
    fe.emit(f"br label %{block_label(t.next)}{fe.loop_md(t.next)}")


def emit_tail_call(fe: FnEmitter, t: Terminator) -> None:
    """Continue in another function: a guaranteed tail call with the same room
    (no checks; the callee's result is this function's)."""
    assert isinstance(t, TailCall)
    res, abi = fe.tmp("r"), fe.abi
    args = state_args(fe, t.args, fe.room, t.callee)
    callee = callee_ref(fe, t.callee)
    dbg = "" if fe.dbg is None else call_sites.location(fe.dbg, None)
    fe.emit(f"{res} = musttail call {abi.cc} {abi.ret} {callee}({args}){dbg}")
    fe.emit(f"ret {abi.ret} {res}")


TERMINATORS: dict[type, TermEmitter] = {Jump: emit_jump, Branch: emit_branch, Ret: emit_ret, Call: emit_call,
                                        TailCall: emit_tail_call, Countdown: emit_countdown}
"""Terminator class -> emitter."""
CONTROL_OPS: frozenset[tuple[Family, str]] = frozenset(
    {(Family.CALL, "call"), (Family.RET, "ret"), (Family.JR, "jr")}
)
"""ISA operations lowered as terminators by this module."""
