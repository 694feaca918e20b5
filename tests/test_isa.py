"""The ISA table and word encoding (isa.md 1.2-1.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zjit.encoding import fields, ld_ext_count, ld_words, pack
from zjit.isa import BY_MNEMONIC, BY_OPCODE, LD_IMM32, LD_IMM64, OPS, Family, Fmt, sext

# Opcode ranges of isa.md 1.2, written out independently of the table builder.
EXPECTED_RANGES = {
    0x00: "CALL", 0x01: "RET", 0x02: "JR", 0x03: "CP", 0x04: "DROP", 0x05: "INC", 0x06: "DEC",
    0x07: "MOV", 0x08: "CPI", 0x10: "ADD", 0x13: "DIVS", 0x19: "XOR", 0x20: "ADD64", 0x26: "REMU64",
    0x29: "XOR64", 0x30: "SLA", 0x34: "ROR", 0x35: "CLZ", 0x37: "POPC", 0x40: "SLA64", 0x45: "CLZ64",
    0x47: "POPC64", 0x50: "EQ", 0x59: "GEU", 0x60: "EQ64", 0x69: "GEU64", 0x70: "LD", 0x71: "LD8U",
    0x75: "LD32", 0x76: "LD64", 0x7C: "LD32S64", 0x80: "ST8", 0x81: "ST8_64", 0x86: "ST64",
    0x90: "LDIR", 0x91: "FILL", 0xF0: "IN", 0xF1: "OUT", 0xF2: "LOG", 0xF3: "ALLOC", 0xF4: "FREE",
    0xF5: "CTL",
}


def test_opcode_count_and_names() -> None:
    # 9 control/misc + 20 arith + 16 shift/count + 20 compare-set + 1 LD + 12 loads + 7 stores
    # + 2 bulk + 6 primitives
    assert len(OPS) == 93
    for code, name in EXPECTED_RANGES.items():
        info = BY_OPCODE[code]
        assert info is not None and info.mnemonic == name
    assert len(BY_MNEMONIC) == len(OPS)


@pytest.mark.parametrize("code", [0x09, 0x0F, 0x1A, 0x2A, 0x38, 0x48, 0x5A, 0x6A, 0x7D, 0x87, 0x92,
                                  0xE0, 0xEF, 0xF6, 0xFF])
def test_invalid_opcodes(code: int) -> None:
    assert BY_OPCODE[code] is None


def test_every_family_has_a_format() -> None:
    assert {o.fmt for o in OPS} == set(Fmt)
    assert {o.family for o in OPS} == set(Family)
    loads = [o for o in OPS if o.family is Family.LOAD]
    assert [(o.width, o.signed, o.ext64) for o in loads][:4] == [(1, False, False), (1, True, False),
                                                                  (2, False, False), (2, True, False)]


@given(st.integers(0, 0xFF), st.integers(0, 15), st.integers(0, 15), st.integers(0, 15),
       st.integers(-2048, 2047))
def test_pack_fields_roundtrip(op: int, rd: int, rs1: int, rs2: int, imm: int) -> None:
    assert fields(pack(op, rd, rs1, rs2, imm)) == (op, rd, rs1, rs2, imm)


@pytest.mark.parametrize(("value", "nwords"), [
    (0, 1), (2047, 1), (-2046, 1), (-2047, 2), (-2048, 2), (2048, 2), (-(1 << 31), 2),
    ((1 << 31) - 1, 2), (1 << 31, 3), (-(1 << 31) - 1, 3), (1 << 63, 3), (-1, 1),
])
def test_ld_form_selection(value: int, nwords: int) -> None:
    words = ld_words(2, value)
    assert len(words) == nwords
    imm = fields(words[0])[4]
    assert ld_ext_count(imm) == nwords - 1
    if nwords == 1:
        assert imm == sext(value, 64)
    elif nwords == 2:
        assert imm == LD_IMM32 and sext(words[1], 32) == sext(value, 64)
    else:
        assert imm == LD_IMM64 and (words[1] | words[2] << 32) == value % (1 << 64)
