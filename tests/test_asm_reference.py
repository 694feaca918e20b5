"""Reference-toolchain forms assemble to exactly the words the reference emits
(docs/assembly.md, "Reference-toolchain forms"): host calls by name, immediate operands
through a temporary register, CP with an immediate. Behaviour on every engine is
checked by tests/conformance/test_refsyntax.py."""

from __future__ import annotations

import pytest

from zjit.asm import assemble
from zjit.errors import AsmError
from zjit.isa import OPS, REG_NAMES, Family, Fmt, OpInfo

TEMP_ORDER = ["A", "IX", "BC", "DE", "HL"]  # written out independently of zjit.asm.compat

HOST_CALLS = {
    "zi_read": "MOV HL, DE\nMOV DE, BC\nIN",
    "zi_write": "MOV HL, DE\nMOV DE, BC\nOUT",
    "zi_telemetry": "LOG",
    "zi_alloc": "ALLOC",
    "zi_free": "FREE",
    "zi_ctl": "CTL",
    "_in": "IN", "_out": "OUT", "_log": "LOG", "_alloc": "ALLOC", "_free": "FREE", "_ctl": "CTL",
}


def same_code(reference: str, base: str) -> bool:
    return assemble(reference + "\nRET\n").code == assemble(base + "\nRET\n").code


@pytest.mark.parametrize("name", HOST_CALLS)
def test_host_calls_are_the_listed_words(name: str) -> None:
    assert same_code(f"CALL {name}", HOST_CALLS[name])
    img = assemble(f"LD HL, 1\nCALL {name}\nRET\n", "h.s")
    # every word of the lowering maps to the CALL's line, so a trap shows it
    assert {d.line for pc, d in img.debug.items() if pc >= 4} >= {2}
    assert all(img.debug[pc].line == 2 for pc in range(4, len(img.code) - 4, 4))


@pytest.mark.parametrize("name", HOST_CALLS)
def test_a_label_of_that_name_stays_a_call(name: str) -> None:
    img = assemble(f"CALL {name}\nRET\n{name}: RET\n")
    assert img.code == assemble("CALL f\nRET\nf: RET\n").code
    # an EQU or a label defined before the call counts too
    assert assemble(f"{name}: RET\nCALL {name}\nRET\n").code == assemble("f: RET\nCALL f\nRET\n").code


def _rrr_ops() -> list[OpInfo]:
    return [op for op in OPS if op.fmt is Fmt.RRR]


@pytest.mark.parametrize("op", _rrr_ops(), ids=lambda o: o.mnemonic)
def test_alu_division_compare_set_immediates_use_the_first_free_register(op: OpInfo) -> None:
    assert op.family in (Family.ALU, Family.DIV, Family.CMPSET)
    for reg in REG_NAMES:
        tmp = next(r for r in TEMP_ORDER if r != reg)
        for imm in ("#5", "-300", "0x123456789", "'x'", "k", "k+1"):
            value = imm.lstrip("#")
            assert same_code(f"k EQU 7\n{op.mnemonic} {reg}, {imm}",
                             f"k EQU 7\nLD {tmp}, {value}\n{op.mnemonic} {reg}, {reg}, {tmp}"), (reg, imm)


@pytest.mark.parametrize("op", [op for op in OPS if op.fmt is Fmt.STORE], ids=lambda o: o.mnemonic)
def test_store_immediates_use_a_register_other_than_the_base(op: OpInfo) -> None:
    for base in REG_NAMES:
        tmp = next(r for r in TEMP_ORDER if r != base)
        for mem in (f"({base})", f"({base}+8)", f"({base}-1)"):
            assert same_code(f"{op.mnemonic} {mem}, #65", f"LD {tmp}, 65\n{op.mnemonic} {mem}, {tmp}")


@pytest.mark.parametrize("value", [-2048, -1, 0, 2047])
def test_cp_with_a_small_immediate_is_cpi(value: int) -> None:
    for reg in REG_NAMES:
        assert same_code(f"CP {reg}, #{value}", f"CPI {reg}, {value}")


@pytest.mark.parametrize("value", [-2049, 2048, 0x80000000, -(1 << 40), (1 << 64) - 1])
def test_cp_with_a_large_immediate_loads_a(value: int) -> None:
    for reg in REG_NAMES:  # also CP A, big: LD A, big ; CP A, A, as the reference does
        assert same_code(f"CP {reg}, {value}", f"LD A, {value}\nCP {reg}, A")


def test_cp_form_follows_a_symbol_defined_later() -> None:
    assert same_code("CP HL, big\nbig EQU 4096", "LD A, 4096\nCP HL, A")
    assert same_code("CP HL, small\nsmall EQU 4", "CPI HL, 4")
    # a forward code label whose value decides the form (12 + 2400 bytes on): the layout settles
    src = "CP HL, far\n" + "DROP HL\n" * 600 + "far: RET"
    img = assemble(src + "\n")
    assert img.code == assemble("LD A, 2412\nCP HL, A\n" + "DROP HL\n" * 600 + "RET\n").code


def test_immediates_still_need_the_two_operand_form() -> None:
    with pytest.raises(AsmError) as info:
        assemble("ADD HL, DE, 5\n")
    assert info.value.code == "ASM_SYNTAX" and "two-operand form ADD r, imm" in info.value.message
    with pytest.raises(AsmError) as info:
        assemble("LD (HL), 5\n")
    assert info.value.code == "ASM_SYNTAX" and "ST8/ST16/ST32/ST64" in info.value.message
    with pytest.raises(AsmError) as info:
        assemble("ADD HL, 1 << 3\n")
    assert info.value.code == "ASM_SYNTAX"
