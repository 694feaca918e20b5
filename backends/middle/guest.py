"""Facts about guest instructions and blocks that every middle-end pass reads.

A leaf module (it imports only the ISA and the IR's state numbering), so the
lifter, the planner and the effect analysis all depend on it and not on each
other: :func:`operands_of` (the state variables an instruction reads and
writes), :func:`intra_successors` (a block's successors inside its function)
and :data:`LIFTER_ONLY` (operations that are renamings, not IR instructions).
"""

from __future__ import annotations

from zjit.verifier import Block

from zjit.encoding import Instr
from zjit.isa import BC, DE, HL, IX, A, Family

from .ir import CMPL, CMPR, NSTATE

_PRIM_OPERANDS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "in": ((HL, DE), (HL,)),
    "out": ((HL, DE), ()),
    "log": ((HL, DE, BC, IX), ()),
    "alloc": ((HL,), (HL,)),
    "free": ((HL,), ()),
    "ctl": ((HL, DE, BC, IX), (HL,)),
}
_BULK_OPERANDS: dict[str, tuple[int, ...]] = {"ldir": (HL, DE, BC), "fill": (HL, BC, A)}


Operands = tuple[tuple[int, ...], tuple[int, ...]]
_operands_memo: dict[tuple[str, int, int, int], Operands] = {}


def operands_of(ins: Instr) -> Operands:
    """State variables an instruction reads and writes, in IR operand order.

    Indices 0..4 are registers, 5 and 6 the CMP halves. MOV, LD and DROP are
    renamings (no IR instruction) and terminators are handled separately; for
    them this returns the variables involved all the same.
    """
    key = (ins.op.mnemonic, ins.rd, ins.rs1, ins.rs2)
    found = _operands_memo.get(key)
    if found is None:
        found = _operands_memo[key] = _operands(ins)
    return found


def _operands(ins: Instr) -> Operands:
    op = ins.op
    fam = op.family
    if fam in (Family.ALU, Family.DIV, Family.CMPSET):
        return (ins.rs1, ins.rs2), (ins.rd,)
    if fam is Family.SHIFT or fam is Family.MOV:
        return (ins.rs1,), (ins.rd,)
    if fam in (Family.BITCOUNT, Family.INCDEC):
        return (ins.rd,), (ins.rd,)
    if fam is Family.LDI:
        return (), (ins.rd,)
    if fam is Family.CP:
        return ((ins.rs1, ins.rs2) if op.operation == "cp" else (ins.rs1,)), (CMPL, CMPR)
    if fam is Family.LOAD:
        return (ins.rs1,), (ins.rd,)
    if fam is Family.STORE:
        return (ins.rs1, ins.rs2), ()
    if fam is Family.BULK:
        return _BULK_OPERANDS[op.operation], ()
    if fam is Family.PRIM:
        return _PRIM_OPERANDS[op.operation]
    if fam is Family.JR:
        return ((CMPL, CMPR) if ins.rs1 else ()), ()
    if fam in (Family.CALL, Family.RET):
        return tuple(range(NSTATE)), (tuple(range(NSTATE)) if fam is Family.CALL else ())
    return (), ()  # DROP


LIFTER_ONLY: frozenset[tuple[Family, str]] = frozenset(
    {(Family.MOV, "mov"), (Family.LDI, "ld"), (Family.NOP, "drop")}
)
"""(family, operation) pairs the lifter resolves by renaming (no IR instruction)."""


def intra_successors(block: Block) -> tuple[int, ...]:
    """Leaders reachable from ``block`` inside the same guest function."""
    last = block.instrs[-1]
    fam = last.op.family
    if fam is Family.RET:
        return ()
    if fam is Family.CALL:
        return (last.next_pc,)
    if fam is Family.JR:
        if last.rs1 == 0 or last.target == last.next_pc:
            return (last.target,)
        return (last.target, last.next_pc)
    return (block.end,)
