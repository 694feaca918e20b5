"""Operand layouts: how each field-rule class (:class:`zjit.isa.Fmt`) maps text operands
to word fields.

The assembler encodes through these layouts and the disassembler decodes through
the same ones, so the two stay exact inverses without any per-mnemonic code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zjit.isa import Fmt


class Kind(enum.Enum):
    """What a written operand is."""

    REG = "register"
    IMM = "immediate"          # signed 12-bit immediate (CPI)
    COUNT = "shift count"      # 0..width-1
    VALUE = "value"            # LD immediate: any 64-bit value or label
    TARGET = "label"           # CALL/JR target (code address)
    COND = "condition"         # JR condition name
    MEM = "memory operand"     # (base) / (base+disp) / (base-disp)


@dataclass(frozen=True, slots=True)
class Src:
    """Where a field's value comes from: operand ``index`` and, for memory operands,
    ``part`` ``"base"`` or ``"disp"``."""

    index: int
    part: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """Operand kinds of one format and the source of each word field (None = 0)."""

    operands: tuple[Kind, ...]
    rd: Src | None = None
    rs1: Src | None = None
    rs2: Src | None = None
    imm: Src | None = None


_M0B, _M0D, _M1B, _M1D = Src(0, "base"), Src(0, "disp"), Src(1, "base"), Src(1, "disp")
S0, S1, S2 = Src(0), Src(1), Src(2)

LAYOUTS: dict[Fmt, Layout] = {
    Fmt.CALL: Layout((Kind.TARGET,), imm=S0),
    Fmt.NONE: Layout(()),
    Fmt.JR: Layout((Kind.COND, Kind.TARGET), rs1=S0, imm=S1),
    Fmt.CP: Layout((Kind.REG, Kind.REG), rd=S0, rs1=S0, rs2=S1),
    Fmt.CPI: Layout((Kind.REG, Kind.IMM), rd=S0, rs1=S0, imm=S1),
    Fmt.DROP: Layout((Kind.REG,), rd=S0),
    Fmt.INCDEC: Layout((Kind.REG,), rd=S0, rs1=S0),
    Fmt.MOV: Layout((Kind.REG, Kind.REG), rd=S0, rs1=S1),
    Fmt.RRR: Layout((Kind.REG, Kind.REG, Kind.REG), rd=S0, rs1=S1, rs2=S2),
    Fmt.SHIFT: Layout((Kind.REG, Kind.REG, Kind.COUNT), rd=S0, rs1=S1, rs2=S1, imm=S2),
    Fmt.UNARY: Layout((Kind.REG,), rd=S0, rs1=S0, rs2=S0),
    Fmt.LDI: Layout((Kind.REG, Kind.VALUE), rd=S0, imm=S1),
    Fmt.LOAD: Layout((Kind.REG, Kind.MEM), rd=S0, rs1=_M1B, rs2=_M1B, imm=_M1D),
    Fmt.STORE: Layout((Kind.MEM, Kind.REG), rd=S1, rs1=_M0B, rs2=S1, imm=_M0D),
}
"""Every :class:`Fmt` has exactly one layout (checked by the tests)."""


def usage(mnemonic: str, fmt: Fmt) -> str:
    """A one-line operand synopsis such as ``ADD dst, a, b`` for error messages."""
    words = {
        Fmt.CALL: "label", Fmt.NONE: "", Fmt.JR: "[cond,] label", Fmt.CP: "lhs, rhs",
        Fmt.CPI: "lhs, imm", Fmt.DROP: "reg", Fmt.INCDEC: "reg", Fmt.MOV: "dst, src",
        Fmt.RRR: "dst, a, b", Fmt.SHIFT: "dst, src, count", Fmt.UNARY: "reg",
        Fmt.LDI: "dst, value", Fmt.LOAD: "dst, (base+disp)", Fmt.STORE: "(base+disp), src",
    }[fmt]
    return f"{mnemonic} {words}".rstrip()
