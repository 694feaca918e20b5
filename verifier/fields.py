"""Field rules of ``isa.md`` 1.4, driven by the ISA table's :class:`~zjit.isa.Fmt`."""

from __future__ import annotations

from zjit.isa import COND_NAMES, NUM_REGS, Fmt, OpInfo

# For each format: which fields hold registers, which must repeat another field,
# which must be zero, and whether IMM12 must be zero.
_REG_FIELDS: dict[Fmt, tuple[str, ...]] = {
    Fmt.CALL: (),
    Fmt.NONE: (),
    Fmt.JR: (),
    Fmt.CP: ("rs1", "rs2"),
    Fmt.CPI: ("rs1",),
    Fmt.DROP: ("rd",),
    Fmt.INCDEC: ("rd",),
    Fmt.MOV: ("rd", "rs1"),
    Fmt.RRR: ("rd", "rs1", "rs2"),
    Fmt.SHIFT: ("rd", "rs1"),
    Fmt.UNARY: ("rd",),
    Fmt.LDI: ("rd",),
    Fmt.LOAD: ("rd", "rs1"),
    Fmt.STORE: ("rs1", "rs2"),
}
# (field, field it must equal)
_DUPLICATES: dict[Fmt, tuple[tuple[str, str], ...]] = {
    Fmt.CP: (("rd", "rs1"),),
    Fmt.CPI: (("rd", "rs1"),),
    Fmt.INCDEC: (("rs1", "rd"),),
    Fmt.SHIFT: (("rs2", "rs1"),),
    Fmt.UNARY: (("rs1", "rd"), ("rs2", "rd")),
    Fmt.LOAD: (("rs2", "rs1"),),
    Fmt.STORE: (("rd", "rs2"),),
}
_ZERO_FIELDS: dict[Fmt, tuple[str, ...]] = {
    Fmt.CALL: ("rd", "rs1", "rs2"),
    Fmt.NONE: ("rd", "rs1", "rs2"),
    Fmt.JR: ("rd", "rs2"),
    Fmt.CPI: ("rs2",),
    Fmt.DROP: ("rs1", "rs2"),
    Fmt.INCDEC: ("rs2",),
    Fmt.MOV: ("rs2",),
    Fmt.LDI: ("rs1", "rs2"),
}
_IMM_ZERO = frozenset({Fmt.NONE, Fmt.CP, Fmt.DROP, Fmt.INCDEC, Fmt.MOV, Fmt.RRR, Fmt.UNARY})


def check_fields(op: OpInfo, rd: int, rs1: int, rs2: int, imm: int) -> tuple[str, str] | None:
    """Return ``(code, message)`` for the first violated field rule, or None."""
    values = {"rd": rd, "rs1": rs1, "rs2": rs2}
    for name in _REG_FIELDS[op.fmt]:
        if values[name] >= NUM_REGS:
            return "BAD_REGISTER", f"{op.mnemonic}: {name.upper()} holds register index {values[name]} (valid 0..4)"
    for name, other in _DUPLICATES.get(op.fmt, ()):
        if values[name] != values[other]:
            return (
                "BAD_FIELD",
                f"{op.mnemonic}: {name.upper()} must repeat {other.upper()} "
                f"({values[name]} != {values[other]})",
            )
    for name in _ZERO_FIELDS.get(op.fmt, ()):
        if values[name] != 0:
            return "BAD_FIELD", f"{op.mnemonic}: {name.upper()} must be 0, is {values[name]}"
    if op.fmt in _IMM_ZERO and imm != 0:
        return "BAD_FIELD", f"{op.mnemonic}: IMM12 must be 0, is {imm}"
    if op.fmt is Fmt.JR and not 0 <= rs1 < len(COND_NAMES):
        return "BAD_IMM", f"JR: condition {rs1} is not 0..{len(COND_NAMES) - 1}"
    if op.fmt is Fmt.SHIFT and not 0 <= imm < op.width:
        return "BAD_IMM", f"{op.mnemonic}: shift count {imm} is not 0..{op.width - 1}"
    return None
