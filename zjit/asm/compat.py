"""Forms of the reference toolchain, lowered to base instructions.

Sources written for the reference assembler assemble unchanged and behave as the
reference's output does (docs/assembly.md, "Reference-toolchain forms"); the
disassembler always prints base forms. :func:`lower` turns one written instruction
into the base instructions it stands for:

* ``LD r, (base+disp)``: ``LD8U`` when ``r`` is ``A``, else ``LD32``; ``LD (base+disp), r``:
  ``ST8``/``ST32``; ``LD r1, r2``: ``MOV r1, r2``;
* two-operand ALU / division / compare-set forms ``ADD r, s`` = ``ADD r, r, s``, and
  ``ADD r, imm`` = ``LD tmp, imm ; ADD r, r, tmp``; shifts ``SLA r, n`` = ``SLA r, r, n``;
* stores of an immediate ``ST8 (b), imm`` = ``LD tmp, imm ; ST8 (b), tmp``;
* ``CP r, imm``: ``CPI r, imm`` when imm fits in -2048..2047, else ``LD A, imm ; CP r, A``;
* host calls by name: ``CALL zi_read``/``zi_write`` = ``MOV HL, DE ; MOV DE, BC ; IN``/``OUT``,
  ``CALL zi_telemetry``/``zi_alloc``/``zi_free``/``zi_ctl`` and ``CALL _in`` ... ``_ctl``
  the bare primitive (a symbol the program defines under such a name stays an
  ordinary call target).

``tmp`` is the first register of :data:`TEMP_ORDER` that is neither the destination
nor a source of the instruction; it really is overwritten, as by the reference.
JR condition aliases (``lts les gts ges``) are handled by :data:`COND_ALIASES`.
"""

from __future__ import annotations

from collections.abc import Callable

from zjit.isa import BC, BY_MNEMONIC, DE, HL, IX, PRIM_NAMES, REG_NAMES, A, Family, Fmt, OpInfo

from .parser import ExprOperand, MemOperand, Operand, RegOperand

COND_ALIASES = {"lts": "lt", "les": "le", "gts": "gt", "ges": "ge"}
"""Extra JR condition spellings of the reference toolchain."""

TEMP_ORDER = (A, IX, BC, DE, HL)
"""Registers tried, in order, for the temporary of an immediate operand."""

HOST_CALLS: dict[str, tuple[str, bool]] = {
    "zi_read": ("IN", True),
    "zi_write": ("OUT", True),
    "zi_telemetry": ("LOG", False),
    "zi_alloc": ("ALLOC", False),
    "zi_free": ("FREE", False),
    "zi_ctl": ("CTL", False),
    **{f"_{name}": (name.upper(), False) for name in PRIM_NAMES},
}
"""``CALL name`` -> (primitive mnemonic, whether ``MOV HL, DE ; MOV DE, BC`` come first)."""

CPI_RANGE = range(-2048, 2048)

Lowered = tuple[OpInfo, tuple[Operand, ...]]
"""A base instruction and its operands."""


def _reg(index: int) -> RegOperand:
    return RegOperand(index, REG_NAMES[index])


def temp_register(*used: int) -> RegOperand:
    """The first register of :data:`TEMP_ORDER` not in ``used``."""
    return _reg(next(r for r in TEMP_ORDER if r not in used))


def _host_call(name: str) -> list[Lowered]:
    mnemonic, moves = HOST_CALLS[name]
    out: list[Lowered] = []
    if moves:
        mov = BY_MNEMONIC["MOV"]
        out = [(mov, (_reg(HL), _reg(DE))), (mov, (_reg(DE), _reg(BC)))]
    return out + [(BY_MNEMONIC[mnemonic], ())]


def lower(op: OpInfo, operands: tuple[Operand, ...], defined: Callable[[str], bool],
          value: Callable[[ExprOperand], int]) -> list[Lowered]:
    """The base instructions a written instruction stands for (itself when it is one).

    ``defined(name)`` tells whether the program defines a symbol of that name;
    ``value(operand)`` evaluates an immediate (needed to choose the ``CP`` form)."""
    n = len(operands)
    first = operands[0] if n else None
    last = operands[-1] if n else None
    if op.fmt is Fmt.LDI and n == 2:
        if isinstance(first, RegOperand) and isinstance(last, MemOperand):
            return [(BY_MNEMONIC["LD8U" if first.index == A else "LD32"], operands)]
        if isinstance(first, MemOperand) and isinstance(last, RegOperand):
            return [(BY_MNEMONIC["ST8" if last.index == A else "ST32"], operands)]
        if isinstance(first, RegOperand) and isinstance(last, RegOperand):
            return [(BY_MNEMONIC["MOV"], operands)]
    ld = BY_MNEMONIC["LD"]
    if op.fmt is Fmt.CP and n == 2 and isinstance(last, ExprOperand):
        if value(last) in CPI_RANGE:
            return [(BY_MNEMONIC["CPI"], operands)]
        return [(ld, (_reg(A), last)), (op, (operands[0], _reg(A)))]
    if op.fmt in (Fmt.RRR, Fmt.SHIFT) and n == 2 and first is not None and last is not None:
        if op.fmt is Fmt.RRR and isinstance(first, RegOperand) and isinstance(last, ExprOperand):
            tmp = temp_register(first.index)
            return [(ld, (tmp, last)), (op, (first, first, tmp))]
        return [(op, (first, first, last))]
    if op.fmt is Fmt.STORE and n == 2 and isinstance(first, MemOperand) \
            and isinstance(last, ExprOperand):
        tmp = temp_register(first.base)
        return [(ld, (tmp, last)), (op, (first, tmp))]
    if op.family is Family.CALL and n == 1 and isinstance(first, ExprOperand):
        name = first.expr.symbol
        if name in HOST_CALLS and not defined(name):
            return _host_call(name)
    return [(op, operands)]
