"""Data operations (isa.md 2.1): every ALU, DIV, shift, bit-count and compare-set
opcode over edge values, against an independent model and hand-written cases."""

from __future__ import annotations

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model import EDGE, M64, Div0, binop, bitcount, shift

from zjit.isa import OPS, Family, OpInfo, TrapKind

RRR = [o for o in OPS if o.family in (Family.ALU, Family.DIV, Family.CMPSET)]
SHIFTS = [o for o in OPS if o.family is Family.SHIFT]
COUNTS = [o for o in OPS if o.family is Family.BITCOUNT]


def _rrr(cfg: EngineCfg, mnemonic: str, x: int, y: int) -> tuple[int | None, object]:
    mod = load_asm(cfg, export_main(f"{mnemonic} A, HL, DE\nRET"))
    r = mod.instantiate().call("main", hl=x, de=y, a=0x5A5A)
    return (r.reg("A") if r.ok else None), r.trap


@pytest.mark.parametrize("op", RRR, ids=[o.mnemonic for o in RRR])
def test_three_register_ops_on_edge_values(engine_cfg: EngineCfg, op: OpInfo) -> None:
    inst = load_asm(engine_cfg, export_main(f"{op.mnemonic} A, HL, DE\nRET")).instantiate()
    for x in EDGE:
        for y in EDGE:
            r = inst.call("main", hl=x, de=y, a=0x5A5A)
            try:
                want = binop(op.operation, op.width, x, y)
            except Div0:
                assert r.trap is not None and r.trap.kind is TrapKind.DIV0, (x, y)
                assert r.trap.pc == 0
                assert r.registers == {"HL": x, "DE": y, "A": 0x5A5A, "BC": 0, "IX": 0}
                continue
            assert r.ok, (x, y, r.trap)
            assert r.reg("A") == want, f"{op.mnemonic} {x:#x}, {y:#x}"
            assert (r.reg("HL"), r.reg("DE")) == (x, y)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=st.integers(0, M64), y=st.integers(0, M64), k=st.integers(0, len(RRR) - 1))
def test_three_register_ops_random(engine_cfg: EngineCfg, x: int, y: int, k: int) -> None:
    op = RRR[k]
    got, trap = _rrr(engine_cfg, op.mnemonic, x, y)
    try:
        assert got == binop(op.operation, op.width, x, y)
    except Div0:
        assert trap is not None


@pytest.mark.parametrize(("text", "hl", "de", "want"), [
    # 32-bit ops wrap and zero-extend
    ("ADD A, HL, DE", 0xFFFF_FFFF, 1, 0),
    ("ADD A, HL, DE", 0xAAAA_AAAA_0000_0005, 0xBBBB_BBBB_0000_0001, 6),
    ("SUB A, HL, DE", 0, 1, 0xFFFF_FFFF),
    ("MUL A, HL, DE", 0x1_0000_0003, 0x10000, 0x30000),
    ("MUL A, HL, DE", 0xFFFF_FFFF, 0xFFFF_FFFF, 1),
    ("OR A, HL, DE", 0xF0F0_0000_0000_0000, 1, 1),
    # 64-bit ops wrap at 2**64
    ("ADD64 A, HL, DE", M64, 2, 1),
    ("SUB64 A, HL, DE", 0, 1, M64),
    ("MUL64 A, HL, DE", 1 << 63, 2, 0),
    # signed division truncates toward zero, REMS has the dividend's sign
    ("DIVS A, HL, DE", (-7) & M64, 2, (-3) & 0xFFFF_FFFF),
    ("REMS A, HL, DE", (-7) & M64, 2, (-1) & 0xFFFF_FFFF),
    ("REMS A, HL, DE", 7, (-2) & M64, 1),
    ("DIVS64 A, HL, DE", (-7) & M64, 2, (-3) & M64),
    ("REMS64 A, HL, DE", (-7) & M64, 2, M64),
    # INT_MIN / -1 does not trap
    ("DIVS A, HL, DE", 0x8000_0000, 0xFFFF_FFFF, 0x8000_0000),
    ("REMS A, HL, DE", 0x8000_0000, 0xFFFF_FFFF, 0),
    ("DIVS64 A, HL, DE", 1 << 63, M64, 1 << 63),
    ("REMS64 A, HL, DE", 1 << 63, M64, 0),
    # 32-bit divisions only look at the low halves
    ("DIVU A, HL, DE", 0x5_0000_0064, 0x7_0000_0005, 20),
    ("DIVU64 A, HL, DE", M64, 1 << 32, 0xFFFF_FFFF),
    # compare-set
    ("LTS A, HL, DE", 0xFFFF_FFFF, 0, 1),
    ("LTU A, HL, DE", 0xFFFF_FFFF, 0, 0),
    ("LTS A, HL, DE", 0x1_0000_0000, 0xFFFF_FFFF, 0),
    ("LTS64 A, HL, DE", M64, 0, 1),
    ("EQ A, HL, DE", 0x1_0000_0007, 7, 1),
    ("EQ64 A, HL, DE", 0x1_0000_0007, 7, 0),
])
def test_hand_written_cases(engine_cfg: EngineCfg, text: str, hl: int, de: int, want: int) -> None:
    r, _ = run_asm(engine_cfg, export_main(text + "\nRET"), registers={"hl": hl, "de": de})
    assert r.ok and r.reg("A") == want


@pytest.mark.parametrize("mnemonic", ["DIVS", "DIVU", "REMS", "REMU"])
def test_div0_uses_low_32_bits_of_divisor(engine_cfg: EngineCfg, mnemonic: str) -> None:
    got, trap = _rrr(engine_cfg, mnemonic, 10, 0x1_0000_0000)
    assert got is None and trap is not None
    got64, trap64 = _rrr(engine_cfg, mnemonic + "64", 10, 0x1_0000_0000)
    assert trap64 is None and got64 is not None


def test_destination_may_alias_sources(engine_cfg: EngineCfg) -> None:
    prog = export_main("ADD64 HL, HL, HL\nSUB DE, DE, HL\nXOR64 A, A, A\nRET")
    r, _ = run_asm(engine_cfg, prog, registers={"hl": 3, "de": 10, "a": 99})
    assert (r.reg("HL"), r.reg("DE"), r.reg("A")) == (6, 4, 0)


@pytest.mark.parametrize("op", SHIFTS, ids=[o.mnemonic for o in SHIFTS])
def test_shifts_every_count_edges(engine_cfg: EngineCfg, op: OpInfo) -> None:
    counts = sorted({0, 1, 7, 8, 16, 31, op.width - 1, op.width // 2 + 3})
    lines = "\n".join(f"{op.mnemonic} A, HL, {c}\nST64 (BC+{8 * k}), A" for k, c in enumerate(counts))
    mod = load_asm(engine_cfg, export_main(lines + "\nRET"))
    inst = mod.instantiate()
    for x in EDGE:
        r = inst.call("main", hl=x, bc=0x100)
        assert r.ok
        mem = bytes(inst.memory[0x100:0x100 + 8 * len(counts)])
        for k, c in enumerate(counts):
            got = int.from_bytes(mem[8 * k:8 * k + 8], "little")
            assert got == shift(op.operation, op.width, x, c), f"{op.mnemonic} {x:#x} by {c}"


@pytest.mark.parametrize(("text", "x", "want"), [
    ("SLA A, HL, 31", 3, 0x8000_0000),
    ("SLA A, HL, 0", 0x1_2345_6789, 0x2345_6789),
    ("SRA A, HL, 31", 0x8000_0000, 0xFFFF_FFFF),
    ("SRA A, HL, 4", 0x1_7000_0000, 0x0700_0000),
    ("SRA64 A, HL, 63", 1 << 63, M64),
    ("SRL A, HL, 31", 0xFFFF_FFFF_FFFF_FFFF, 1),
    ("SRL64 A, HL, 63", M64, 1),
    ("ROL A, HL, 4", 0x1234_5678, 0x2345_6781),
    ("ROR A, HL, 4", 0xF_1234_5678, 0x8123_4567),
    ("ROL64 A, HL, 63", 1, 1 << 63),
    ("ROR64 A, HL, 1", 1, 1 << 63),
    ("ROR A, HL, 0", 0xF_1234_5678, 0x1234_5678),
])
def test_shift_cases(engine_cfg: EngineCfg, text: str, x: int, want: int) -> None:
    r, _ = run_asm(engine_cfg, export_main(text + "\nRET"), registers={"hl": x})
    assert r.ok and r.reg("A") == want


@pytest.mark.parametrize("op", COUNTS, ids=[o.mnemonic for o in COUNTS])
def test_bit_counts(engine_cfg: EngineCfg, op: OpInfo) -> None:
    inst = load_asm(engine_cfg, export_main(f"{op.mnemonic} HL\nRET")).instantiate()
    for x in EDGE:
        r = inst.call("main", hl=x)
        assert r.reg("HL") == bitcount(op.operation, op.width, x), f"{op.mnemonic} {x:#x}"
    assert inst.call("main", hl=0).reg("HL") == (op.width if op.operation != "popc" else 0)


@pytest.mark.parametrize(("text", "x", "want"), [
    ("CLZ HL", 0, 32), ("CTZ HL", 0, 32), ("CLZ64 HL", 0, 64), ("CTZ64 HL", 0, 64),
    ("CLZ HL", 0x1_0000_0000, 32), ("CTZ HL", 0x1_0000_0000, 32), ("CTZ64 HL", 0x1_0000_0000, 32),
    ("CLZ HL", 1, 31), ("CLZ64 HL", 1, 63), ("POPC HL", M64, 32), ("POPC64 HL", M64, 64),
])
def test_bit_count_cases(engine_cfg: EngineCfg, text: str, x: int, want: int) -> None:
    r, _ = run_asm(engine_cfg, export_main(text + "\nRET"), registers={"hl": x})
    assert r.reg("HL") == want


def test_inc_dec_mov_ld_drop(engine_cfg: EngineCfg) -> None:
    prog = export_main("""
        INC HL          ; 0xFFFFFFFF -> 0 (32-bit, zero-extended)
        DEC DE          ; 0 -> 0xFFFFFFFF
        INC BC          ; high bits dropped
        MOV IX, A       ; all 64 bits
        DROP A
        RET
    """)
    r, _ = run_asm(engine_cfg, prog, registers={"hl": 0xFFFF_FFFF, "de": 0,
                                                "bc": 0x7_0000_0001, "a": M64 - 5})
    assert r.registers == {"HL": 0, "DE": 0xFFFF_FFFF, "BC": 2, "IX": M64 - 5, "A": M64 - 5}


@pytest.mark.parametrize("value", [0, 1, -1, 2047, -2046, -2047, -2048, 2048, -2049,
                                   0x7FFF_FFFF, -0x8000_0000, 0x8000_0000, 0xFFFF_FFFF,
                                   0x1_0000_0000, -0x8000_0001, 0x7FFF_FFFF_FFFF_FFFF,
                                   -0x8000_0000_0000_0000, M64])
def test_ld_immediate_forms(engine_cfg: EngineCfg, value: int) -> None:
    r, _ = run_asm(engine_cfg, export_main(f"LD BC, {value}\nRET"))
    assert r.reg("BC") == value & M64
