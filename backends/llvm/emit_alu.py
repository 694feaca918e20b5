"""Data-processing emitters: ALU, INC/DEC, shifts, bit counts, compare-set, CP, division.

32-bit operations work on ``trunc`` to i32 and ``zext`` the result, which is
exactly "read the low 32 bits, wrap, zero-extend" (``isa.md`` 2). Division is
guarded before the ``sdiv``/``udiv``: a zero divisor traps DIV0, and for signed
operations ``INT_MIN / -1`` is computed as ``INT_MIN / 1`` (and ``INT_MIN % -1``
as ``INT_MIN % 1``), which gives the specified INT_MIN and 0 without LLVM's UB.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.isa import Family, TrapKind

from ..middle.ir import Inst
from .emit_traps import guard
from .function import FnEmitter, const_int

Emitter = Callable[[FnEmitter, Inst], None]

_ALU_OPS = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or", "xor": "xor"}
_CMP_PRED = {"eq": "eq", "ne": "ne", "lts": "slt", "les": "sle", "gts": "sgt", "ges": "sge",
             "ltu": "ult", "leu": "ule", "gtu": "ugt", "geu": "uge"}
_DIV_OPS = {"divs": "sdiv", "divu": "udiv", "rems": "srem", "remu": "urem"}


def _operands(fe: FnEmitter, ins: Inst, width: int) -> list[str]:
    if width == 32:
        return [fe.lo32(a) for a in ins.args]
    return [fe.val(a) for a in ins.args]


def _result(fe: FnEmitter, ins: Inst, width: int, value: str) -> None:
    """Bind the instruction's destination to ``value`` (an iW), zero-extended."""
    if width == 32:
        fe.emit(f"{fe.dest(ins.dests[0])} = zext i32 {value} to i64")
    else:
        fe.bind(ins.dests[0], value)


def emit_alu(fe: FnEmitter, ins: Inst) -> None:
    """ADD SUB MUL AND OR XOR (32 and 64). The low 32 bits of these 64-bit
    operations only depend on the low 32 bits of the inputs, so the 32-bit forms
    are the 64-bit operation with the high half cleared."""
    a, b = (fe.val(x) for x in ins.args)
    op = _ALU_OPS[ins.op.operation]
    if ins.op.width == 64 or ins.exact:  # exact: the guard proved the result below 2**32
        fe.emit(f"{fe.dest(ins.dests[0])} = {op} i64 {a}, {b}")
        return
    t = fe.tmp()
    fe.emit(f"{t} = {op} i64 {a}, {b}")
    fe.emit(f"{fe.dest(ins.dests[0])} = and i64 {t}, 4294967295")


def emit_incdec(fe: FnEmitter, ins: Inst) -> None:
    """INC, DEC: 32-bit, zero-extended (no wrap to undo when ``exact``)."""
    delta = 1 if ins.op.operation == "inc" else -1
    if ins.exact:
        fe.emit(f"{fe.dest(ins.dests[0])} = add i64 {fe.val(ins.args[0])}, {delta}")
        return
    t = fe.tmp()
    fe.emit(f"{t} = add i64 {fe.val(ins.args[0])}, {delta}")
    fe.emit(f"{fe.dest(ins.dests[0])} = and i64 {t}, 4294967295")


def emit_cmpset(fe: FnEmitter, ins: Inst) -> None:
    """EQ..GEU: 1 when the comparison holds, else 0."""
    w = ins.op.width
    a, b = _operands(fe, ins, w)
    c = fe.tmp("c")
    fe.emit(f"{c} = icmp {_CMP_PRED[ins.op.operation]} i{w} {a}, {b}")
    fe.emit(f"{fe.dest(ins.dests[0])} = zext i1 {c} to i64")


def emit_shift(fe: FnEmitter, ins: Inst) -> None:
    """SLA SRA SRL ROL ROR by a constant count (verified to be below the width)."""
    w = ins.op.width
    (a,) = _operands(fe, ins, w)
    c = ins.imm
    assert 0 <= c < w, "the verifier bounds shift counts"
    op = ins.op.operation
    t = fe.tmp()
    if op in ("sla", "sra", "srl"):
        llop = {"sla": "shl", "sra": "ashr", "srl": "lshr"}[op]
        fe.emit(f"{t} = {llop} i{w} {a}, {c}")
    else:
        name = f"llvm.{'fshl' if op == 'rol' else 'fshr'}.i{w}"
        fe.intrinsic(f"declare i{w} @{name}(i{w}, i{w}, i{w})")
        fe.emit(f"{t} = call i{w} @{name}(i{w} {a}, i{w} {a}, i{w} {c})")
    _result(fe, ins, w, t)


def emit_bitcount(fe: FnEmitter, ins: Inst) -> None:
    """CLZ CTZ POPC; CLZ(0) = CTZ(0) = width (the ``i1 false`` form is defined at 0)."""
    w = ins.op.width
    (a,) = _operands(fe, ins, w)
    op = {"clz": "ctlz", "ctz": "cttz", "popc": "ctpop"}[ins.op.operation]
    t = fe.tmp()
    if op == "ctpop":
        fe.intrinsic(f"declare i{w} @llvm.ctpop.i{w}(i{w})")
        fe.emit(f"{t} = call i{w} @llvm.ctpop.i{w}(i{w} {a})")
    else:
        fe.intrinsic(f"declare i{w} @llvm.{op}.i{w}(i{w}, i1)")
        fe.emit(f"{t} = call i{w} @llvm.{op}.i{w}(i{w} {a}, i1 false)")
    _result(fe, ins, w, t)


def emit_cp(fe: FnEmitter, ins: Inst) -> None:
    """CP / CPI: the CMP halves are the low 32 bits (CPI's rhs is a constant)."""
    for arg, d in zip(ins.args, ins.dests, strict=False):
        fe.bind(d, fe.lo32(arg))


def emit_div(fe: FnEmitter, ins: Inst) -> None:
    """DIVS DIVU REMS REMU: DIV0 guard first, INT_MIN / -1 made well defined."""
    w = ins.op.width
    x, y = _operands(fe, ins, w)
    op = ins.op.operation
    yc = const_int(y)
    if yc is None or yc == 0:
        nz = fe.tmp("c")
        fe.emit(f"{nz} = icmp ne i{w} {y}, 0")
        guard(fe, nz, int(TrapKind.DIV0), ins.pc, ins.regs)
    divisor = y
    if op in ("divs", "rems") and (yc is None or yc == -1):
        int_min = -(1 << (w - 1))
        c1, c2, c3, ys = fe.tmp("c"), fe.tmp("c"), fe.tmp("c"), fe.tmp()
        fe.emit(f"{c1} = icmp eq i{w} {x}, {int_min}")
        fe.emit(f"{c2} = icmp eq i{w} {y}, -1")
        fe.emit(f"{c3} = and i1 {c1}, {c2}")
        fe.emit(f"{ys} = select i1 {c3}, i{w} 1, i{w} {y}")
        divisor = ys
    t = fe.tmp()
    fe.emit(f"{t} = {_DIV_OPS[op]} i{w} {x}, {divisor}")
    _result(fe, ins, w, t)


EMITTERS: dict[tuple[Family, str], Emitter] = {}
for _op in _ALU_OPS:
    EMITTERS[(Family.ALU, _op)] = emit_alu
for _op in _DIV_OPS:
    EMITTERS[(Family.DIV, _op)] = emit_div
for _op in _CMP_PRED:
    EMITTERS[(Family.CMPSET, _op)] = emit_cmpset
for _op in ("sla", "sra", "srl", "rol", "ror"):
    EMITTERS[(Family.SHIFT, _op)] = emit_shift
for _op in ("clz", "ctz", "popc"):
    EMITTERS[(Family.BITCOUNT, _op)] = emit_bitcount
EMITTERS[(Family.INCDEC, "inc")] = emit_incdec
EMITTERS[(Family.INCDEC, "dec")] = emit_incdec
EMITTERS[(Family.CP, "cp")] = emit_cp
EMITTERS[(Family.CP, "cpi")] = emit_cp
