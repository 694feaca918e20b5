"""Loads, stores, bounds, write protection, LDIR and FILL (isa.md 2.5-2.7)."""

from __future__ import annotations

import struct

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm
from model import M64

from zjit.image import SegmentDesc
from zjit.isa import OPS, Family, OpInfo, TrapKind
from zjit.result import Result

MEM = 0x10000
LOADS = [o for o in OPS if o.family is Family.LOAD]
STORES = [o for o in OPS if o.family is Family.STORE]

DATA = bytes([0x80, 0xFF, 0x7F, 0x01, 0xFE, 0xFF, 0xFF, 0x80, 0x11, 0x22])
PATTERN = "PUBLIC main\nmain:\n{body}\nRET\ndata: DB " + ", ".join(str(b) for b in DATA) + "\n"


def expected_load(op: OpInfo, raw: bytes) -> int:
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}[op.width]
    value: int = struct.unpack("<" + (fmt if op.signed else fmt.upper()), raw)[0]
    if op.signed and not op.ext64:
        return value & 0xFFFF_FFFF      # sign-extend to 32 bits, then zero-extend
    return value & M64


@pytest.mark.parametrize("op", LOADS, ids=[o.mnemonic for o in LOADS])
def test_loads_extend_as_specified(engine_cfg: EngineCfg, op: OpInfo) -> None:
    lines = "\n".join(f"LD HL, data\n{op.mnemonic} A, (HL+{k})\nST64 (BC+{8 * k}), A" for k in range(3))
    r, mem = run_asm(engine_cfg, PATTERN.format(body="LD BC, 0x800\n" + lines))
    assert r.ok
    for k in range(3):
        got = int.from_bytes(mem[0x800 + 8 * k:0x808 + 8 * k], "little")
        assert got == expected_load(op, DATA[k:k + op.width]), f"{op.mnemonic} at +{k}"


@pytest.mark.parametrize(("text", "want"), [
    ("LD8S A, (HL+0)", 0xFFFF_FF80),
    ("LD8S64 A, (HL+0)", 0xFFFF_FFFF_FFFF_FF80),
    ("LD8U64 A, (HL+1)", 0xFF),
    ("LD16S A, (HL+0)", 0xFFFF_FF80),
    ("LD16U A, (HL+0)", 0xFF80),
    ("LD32 A, (HL+4)", 0x80FF_FFFE),
    ("LD32S64 A, (HL+4)", 0xFFFF_FFFF_80FF_FFFE),
    ("LD64 A, (HL+0)", 0x80FF_FFFE_017F_FF80),
    ("LD16U A, (HL+8)", 0x2211),
])
def test_load_cases(engine_cfg: EngineCfg, text: str, want: int) -> None:
    r, _ = run_asm(engine_cfg, PATTERN.format(body=f"LD HL, data\n{text}"))
    assert r.ok and r.reg("A") == want


@pytest.mark.parametrize("op", STORES, ids=[o.mnemonic for o in STORES])
def test_stores_write_low_bytes_little_endian(engine_cfg: EngineCfg, op: OpInfo) -> None:
    prog = export_main(f"{op.mnemonic} (HL-3), DE\nRET")
    r, mem = run_asm(engine_cfg, prog, registers={"hl": 0x303, "de": 0x8877_6655_4433_2211})
    assert r.ok
    n = op.width
    assert mem[0x300:0x300 + n] == (0x8877_6655_4433_2211).to_bytes(8, "little")[:n]
    assert mem[0x300 + n:0x310] == bytes(0x10 - n)


def test_memory_persists_across_runs(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD64 A, (HL)\nINC A\nST64 (HL), A\nRET")
    inst = load_asm(engine_cfg, prog).instantiate()
    for k in range(1, 4):
        assert inst.call("main", hl=0x40).reg("A") == k
    assert inst.memory[0x40] == 3
    inst.memory[0x40] = 41
    assert inst.call("main", hl=0x40).reg("A") == 42


@pytest.mark.parametrize(("mnemonic", "n"), [("LD8U", 1), ("LD16U", 2), ("LD32", 4), ("LD64", 8)])
def test_load_bounds_are_exact(engine_cfg: EngineCfg, mnemonic: str, n: int) -> None:
    prog = export_main(f"{mnemonic} A, (HL+0)\nRET")
    inst = load_asm(engine_cfg, prog, mem_size=MEM).instantiate()
    assert inst.call("main", hl=MEM - n).ok
    r = inst.call("main", hl=MEM - n + 1, a=77)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.pc, r.trap.address, r.trap.length) == (0, MEM - n + 1, n)
    assert r.reg("A") == 77   # the trapping load has no effect


@pytest.mark.parametrize(("hl", "disp", "address"), [
    (0, -1, M64),                      # wraps to the top of the address space
    (M64 - 3, 0, M64 - 3),             # a + n overflows 64 bits: still out of bounds
    (1 << 63, 0, 1 << 63),
    (MEM - 4, 4, MEM),
])
def test_out_of_bounds_addresses(engine_cfg: EngineCfg, hl: int, disp: int, address: int) -> None:
    prog = export_main(f"ST64 (HL{disp:+d}), DE\nRET")
    r, mem = run_asm(engine_cfg, prog, registers={"hl": hl, "de": M64}, mem_size=MEM)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.address, r.trap.length) == (address, 8)
    assert mem == bytes(MEM)


def test_address_arithmetic_wraps_mod_2_64(engine_cfg: EngineCfg) -> None:
    prog = export_main("ST8 (HL+8), DE\nLD8U A, (HL+9)\nRET")
    r, mem = run_asm(engine_cfg, prog, registers={"hl": M64 - 3, "de": 0xAB})  # -4 + 8 = 4
    assert r.ok and mem[4] == 0xAB and r.reg("A") == 0


RO = (SegmentDesc("rodata", 0x8000, 0x100, "r", b"\x11\x22\x33\x44"),
      SegmentDesc("text", 0x9000, 0x10, "rx", b"\x55"))


@pytest.mark.parametrize(("address", "n", "traps"), [
    (0x8000, 1, True), (0x80FF, 1, True), (0x7FF9, 8, True), (0x7FF8, 8, False),
    (0x8100, 8, False), (0x80FE, 4, True), (0x900F, 1, True), (0x9010, 2, False),
])
def test_write_protect(engine_cfg: EngineCfg, address: int, n: int, traps: bool) -> None:
    store = {1: "ST8", 2: "ST16", 4: "ST32", 8: "ST64"}[n]
    prog = export_main(f"LD8U A, (HL)\n{store} (HL), DE\nRET")
    r, mem = run_asm(engine_cfg, prog, registers={"hl": address, "de": M64}, segments=RO)
    if traps:
        assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT
        assert (r.trap.pc, r.trap.address, r.trap.length) == (4, address, n)
        assert mem[address:address + n] != b"\xff" * n
    else:
        assert r.ok and mem[address:address + n] == b"\xff" * n


def test_read_only_segment_is_readable(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD32 A, (HL)\nLD8U DE, (BC+0)\nRET")
    r, _ = run_asm(engine_cfg, prog, registers={"hl": 0x8000, "bc": 0x9000}, segments=RO)
    assert r.ok and r.reg("A") == 0x4433_2211 and r.reg("DE") == 0x55


def _bulk(cfg: EngineCfg, op: str, hl: int, de: int, bc: int, a: int = 0,
          segments: tuple[SegmentDesc, ...] = ()) -> tuple[Result, bytes, bytes]:
    prog = export_main(f"{op}\nRET")
    mod = load_asm(cfg, prog, segments=segments, mem_size=MEM)
    inst = mod.instantiate()
    inst.memory[0x100:0x120] = bytes(range(1, 33))
    before = bytes(inst.memory)
    r = inst.call("main", hl=hl, de=de, bc=bc, a=a)
    return r, before, bytes(inst.memory)


def test_ldir_overlapping_forward_and_backward(engine_cfg: EngineCfg) -> None:
    r, _, mem = _bulk(engine_cfg, "LDIR", hl=0x100, de=0x104, bc=16)   # dst above src
    assert r.ok and mem[0x104:0x114] == bytes(range(1, 17))     # memmove, not a byte loop
    assert mem[0x100:0x104] == bytes([1, 2, 3, 4])
    r, _, mem = _bulk(engine_cfg, "LDIR", hl=0x104, de=0x100, bc=16)   # dst below src
    assert r.ok and mem[0x100:0x110] == bytes(range(5, 21))
    assert r.registers == {"HL": 0x104, "DE": 0x100, "BC": 16, "A": 0, "IX": 0}


def test_ldir_zero_count_is_a_no_op_even_with_wild_addresses(engine_cfg: EngineCfg) -> None:
    r, before, mem = _bulk(engine_cfg, "LDIR", hl=M64, de=M64, bc=0)
    assert r.ok and mem == before


@pytest.mark.parametrize(("hl", "de", "bc", "kind", "address"), [
    (MEM - 4, MEM - 4, 8, TrapKind.OOB, MEM - 4),          # source checked first
    (0x100, MEM - 4, 8, TrapKind.OOB, MEM - 4),            # then destination bounds
    (0x100, 0x7FFC, 8, TrapKind.WRITE_PROTECT, 0x7FFC),    # then destination permission
    (0x8000, 0x8000, 8, TrapKind.WRITE_PROTECT, 0x8000),
    (0x100, 0x200, 1 << 63, TrapKind.OOB, 0x100),          # 64-bit count
])
def test_ldir_checks(engine_cfg: EngineCfg, hl: int, de: int, bc: int, kind: TrapKind, address: int) -> None:
    ro = (SegmentDesc("rodata", 0x8000, 0x100, "r", b"\x11"),)
    r, before, mem = _bulk(engine_cfg, "LDIR", hl=hl, de=de, bc=bc, segments=ro)
    assert r.trap is not None and r.trap.kind is kind
    assert (r.trap.pc, r.trap.address, r.trap.length) == (0, address, bc)
    assert mem == before
    assert r.registers == {"HL": hl, "DE": de, "BC": bc, "A": 0, "IX": 0}


def test_ldir_from_read_only_is_allowed(engine_cfg: EngineCfg) -> None:
    ro = (SegmentDesc("rodata", 0x8000, 0x100, "r", b"\x11\x22"),)
    r, _, mem = _bulk(engine_cfg, "LDIR", hl=0x8000, de=0x400, bc=2, segments=ro)
    assert r.ok and mem[0x400:0x402] == b"\x11\x22"


def test_fill(engine_cfg: EngineCfg) -> None:
    r, _, mem = _bulk(engine_cfg, "FILL", hl=0x102, de=0, bc=5, a=0x1_23AB)
    assert r.ok and mem[0x100:0x109] == bytes([1, 2, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 8, 9])
    assert r.registers == {"HL": 0x102, "DE": 0, "BC": 5, "A": 0x1_23AB, "IX": 0}
    r, before, mem = _bulk(engine_cfg, "FILL", hl=M64, de=0, bc=0, a=1)
    assert r.ok and mem == before
    r, before, mem = _bulk(engine_cfg, "FILL", hl=MEM - 2, de=0, bc=3, a=1)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.address, r.trap.length) == (MEM - 2, 3) and mem == before
    ro = (SegmentDesc("rodata", 0x8000, 0x100, "r", b"\x11"),)
    r, before, mem = _bulk(engine_cfg, "FILL", hl=0x80FF, de=0, bc=3, a=1, segments=ro)
    assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT
    assert (r.trap.address, r.trap.length) == (0x80FF, 3) and mem == before


def test_negative_displacement(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, PATTERN.format(body="LD HL, data + 10\nLD16U A, (HL-2)"))
    assert r.ok and r.reg("A") == 0x2211
