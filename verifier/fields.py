"""Field rules of ``isa.md`` 1.4, driven by the ISA table's :class:`~zjit.isa.Fmt`."""

from __future__ import annotations

from array import array
from itertools import product

from zjit.isa import BY_OPCODE, COND_NAMES, NUM_REGS, Fmt, OpInfo

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


# --------------------------------------------------------------------------- word table

IMM_ANY = 1 << 12
"""Bound meaning "every IMM12 value is valid" (raw IMM12 is below 4096)."""


def imm_bound(op: OpInfo) -> int:
    """The field rules' IMM12 check as a bound on the raw 12 bits: a word's IMM12 is
    valid exactly when ``word & 0xFFF < imm_bound(op)`` (1: must be 0; a shift's
    width: count 0..width-1, negative counts are raw values >= 2048)."""
    if op.fmt in _IMM_ZERO:
        return 1
    if op.fmt is Fmt.SHIFT:
        return op.width
    return IMM_ANY


def valid_registers(fmt: Fmt) -> list[tuple[int, int, int]]:
    """Every ``(rd, rs1, rs2)`` the field rules of ``fmt`` accept: register fields
    0..NUM_REGS-1, JR's condition 0..10, zero fields 0, a repeated field equal to
    the field it repeats, any other field 0..15."""
    names = ("rd", "rs1", "rs2")
    repeats = dict(_DUPLICATES.get(fmt, ()))
    choices: dict[str, range] = {name: range(16) for name in names}
    for name in _REG_FIELDS[fmt]:
        choices[name] = range(NUM_REGS)
    for name in _ZERO_FIELDS.get(fmt, ()):
        choices[name] = range(1)
    if fmt is Fmt.JR:
        choices["rs1"] = range(len(COND_NAMES))
    free = [name for name in names if name not in repeats]
    out = []
    for picked in product(*(choices[name] for name in free)):
        values = dict(zip(free, picked, strict=True))
        for name, other in repeats.items():
            values[name] = values[other]
        if all(values[name] in choices[name] for name in repeats):
            out.append((values["rd"], values["rs1"], values["rs2"]))
    return out


_WORD_BOUNDS: list[memoryview] = []


def word_bounds() -> memoryview:
    """For every ``word >> 12`` (opcode and register fields), the IMM12 bound of
    :func:`imm_bound`, or 0 when the opcode is invalid or the registers break a
    field rule: a word decodes exactly when ``word & 0xFFF < bounds[word >> 12]``
    (the verdict of :func:`check_fields`; tests/test_verifier.py compares them
    exhaustively). 2 MiB of u16, built on first use (about a millisecond)."""
    if not _WORD_BOUNDS:
        zero = array("H", bytes(2 << 12))
        rows: dict[tuple[Fmt, int], array[int]] = {}
        per_opcode: list[array[int]] = []
        for op in BY_OPCODE:
            if op is None:
                per_opcode.append(zero)
                continue
            key = (op.fmt, imm_bound(op))
            row = rows.get(key)
            if row is None:
                row = rows[key] = array("H", zero)
                for rd, rs1, rs2 in valid_registers(op.fmt):
                    row[rd << 8 | rs1 << 4 | rs2] = key[1]
            per_opcode.append(row)
        _WORD_BOUNDS.append(memoryview(b"".join(per_opcode)).cast("H"))
    return _WORD_BOUNDS[0]
