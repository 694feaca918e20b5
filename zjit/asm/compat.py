"""Operand forms of the reference toolchain, rewritten to the base syntax.

The reference assembler accepts a few shorthand forms; zjit reads them too so such
sources assemble unchanged (the disassembler always prints the base forms):

* ``LD r, (base+disp)``: a load, ``LD8U`` when ``r`` is ``A`` and ``LD32`` otherwise;
  ``LD (base+disp), r``: the matching store ``ST8``/``ST32``;
* ``LD r1, r2``: ``MOV r1, r2``;
* ``CP r, imm``: ``CPI r, imm``;
* two-operand ALU / division / compare-set forms ``ADD r, s`` = ``ADD r, r, s`` and
  shifts ``SLA r, n`` = ``SLA r, r, n``;
* ``CALL _in`` ... ``CALL _ctl``: the host primitive itself (unless a label of that
  name exists).

JR condition aliases (``lts les gts ges``) are handled by :data:`COND_ALIASES`.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.isa import BY_MNEMONIC, PRIM_NAMES, REG_INDEX, Family, Fmt, OpInfo

from .parser import ExprOperand, MemOperand, Operand, RegOperand

COND_ALIASES = {"lts": "lt", "les": "le", "gts": "gt", "ges": "ge"}
"""Extra JR condition spellings of the reference toolchain."""

_A = REG_INDEX["A"]
_PRIMS = {f"_{name}": BY_MNEMONIC[name.upper()] for name in PRIM_NAMES}


def reference_form(op: OpInfo, operands: tuple[Operand, ...],
                   defined: Callable[[str], bool]) -> tuple[OpInfo, tuple[Operand, ...]]:
    """Rewrite a reference-toolchain form to the base syntax (else return it as is).

    ``defined(name)`` tells whether a symbol of that name exists."""
    n = len(operands)
    if op.fmt is Fmt.LDI and n == 2:
        dst, src = operands
        if isinstance(dst, RegOperand) and isinstance(src, MemOperand):
            return BY_MNEMONIC["LD8U" if dst.index == _A else "LD32"], operands
        if isinstance(dst, MemOperand) and isinstance(src, RegOperand):
            return BY_MNEMONIC["ST8" if src.index == _A else "ST32"], operands
        if isinstance(dst, RegOperand) and isinstance(src, RegOperand):
            return BY_MNEMONIC["MOV"], operands
    if op.fmt is Fmt.CP and n == 2 and isinstance(operands[1], ExprOperand):
        return BY_MNEMONIC["CPI"], operands
    if op.fmt is Fmt.RRR and n == 2 and isinstance(operands[0], RegOperand):
        return op, (operands[0], operands[0], operands[1])
    if op.fmt is Fmt.SHIFT and n == 2 and isinstance(operands[0], RegOperand):
        return op, (operands[0], operands[0], operands[1])
    if op.family is Family.CALL and n == 1 and isinstance(operands[0], ExprOperand):
        name = operands[0].expr.symbol
        if name in _PRIMS and not defined(name):
            return _PRIMS[name], ()
    return op, operands
