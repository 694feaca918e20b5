"""Assembler: every mnemonic, LD forms, syntax, data directives, errors, round trips."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zjit.verifier import verify

from zjit.asm import assemble, disassemble
from zjit.container.zasm_bin import read_zasm_bin, write_zasm_bin
from zjit.errors import AsmError
from zjit.image import DebugLine, SegmentDesc
from zjit.isa import BY_MNEMONIC, COND_NAMES, OPS, REG_NAMES, Fmt, OpInfo


def words(code: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(code) // 4}I", code))


def w(op: int, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0) -> int:
    """Word layout written out independently of zjit.encoding."""
    return (op << 24) | (rd << 20) | (rs1 << 16) | (rs2 << 12) | (imm & 0xFFF)


DE, A, BC, IX = 1, 2, 3, 4


def case_for(op: OpInfo) -> tuple[str, int]:
    """(instruction text, expected word) following isa.md 1.4, one case per format.

    The instruction sits at pc 0 and the label ``t`` at pc 8."""
    m, code = op.mnemonic, op.opcode
    f = op.fmt
    if f is Fmt.CALL:
        return f"{m} t", w(code, imm=2)
    if f is Fmt.NONE:
        return m, w(code)
    if f is Fmt.JR:
        return f"{m} gtu, t", w(code, rs1=9, imm=2)
    if f is Fmt.CP:
        return f"{m} BC, IX", w(code, BC, BC, IX)
    if f is Fmt.CPI:
        return f"{m} DE, #-100", w(code, DE, DE, 0, -100)
    if f is Fmt.DROP:
        return f"{m} IX", w(code, IX)
    if f is Fmt.INCDEC:
        return f"{m} A", w(code, A, A)
    if f is Fmt.MOV:
        return f"{m} DE, IX", w(code, DE, IX)
    if f is Fmt.RRR:
        return f"{m} IX, A, DE", w(code, IX, A, DE)
    if f is Fmt.SHIFT:
        count = op.width - 1
        return f"{m} A, BC, {count}", w(code, A, BC, BC, count)
    if f is Fmt.UNARY:
        return f"{m} BC", w(code, BC, BC, BC)
    if f is Fmt.LDI:
        return f"{m} IX, 2047", w(code, IX, 0, 0, 2047)
    if f is Fmt.LOAD:
        return f"{m} DE, (IX-2048)", w(code, DE, IX, IX, -2048)
    if f is Fmt.STORE:
        return f"{m} (A+2047), BC", w(code, BC, A, BC, 2047)
    raise AssertionError(f)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.mnemonic)
def test_every_mnemonic_encodes_and_lists_back(op: OpInfo) -> None:
    text, expected = case_for(op)
    img = assemble(f"{text}\n RET\nt: RET\n")
    assert words(img.code)[0] == expected
    listing = disassemble(img)
    again = assemble(listing)
    assert again.code == img.code
    first_line = next(ln for ln in listing.splitlines() if ln.startswith(" " * 8 + op.mnemonic))
    assert first_line.split(";")[0].split()[0] == op.mnemonic


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.mnemonic)
def test_mnemonics_are_case_insensitive(op: OpInfo) -> None:
    text, expected = case_for(op)
    img = assemble(f"{text.lower()}\n ret\nt: ret\n".replace("gtu", "GTU"))
    assert words(img.code)[0] == expected


LD_CASES = [
    (-2048, [0x800, 0xFFFF_F800]),
    (-2047, [0x800, 0xFFFF_F801]),
    (-2046, [0x802]),
    (-1, [0xFFF]),
    (0, [0x000]),
    (2047, [0x7FF]),
    (2048, [0x800, 0x0000_0800]),
    (-(1 << 31), [0x800, 0x8000_0000]),
    ((1 << 31) - 1, [0x800, 0x7FFF_FFFF]),
    (1 << 31, [0x801, 0x8000_0000, 0]),
    (1 << 32, [0x801, 0, 1]),
    (1 << 63, [0x801, 0, 0x8000_0000]),
    (-(1 << 63), [0x801, 0, 0x8000_0000]),
    ((1 << 64) - 1, [0xFFF]),
    (-(1 << 31) - 1, [0x801, 0x7FFF_FFFF, 0xFFFF_FFFF]),
]


@pytest.mark.parametrize(("value", "tail"), LD_CASES, ids=[str(v) for v, _ in LD_CASES])
def test_ld_forms(value: int, tail: list[int]) -> None:
    img = assemble(f"LD BC, {value}\nRET\n")
    got = words(img.code)[:-1]
    assert got[0] == (0x70 << 24) | (BC << 20) | tail[0]
    assert got[1:] == tail[1:]
    again = assemble(disassemble(img))
    assert again.code == img.code


def test_ld_hex_and_char_and_hash_forms() -> None:
    img = assemble("LD A, #0x41\nLD A, 'A'\nLD A, #'\\n'\nLD A, 0b101\nLD A, 1_000\nRET\n")
    vals = [x & 0xFFF for x in words(img.code)[:5]]
    assert vals == [0x41, 0x41, 10, 5, 1000]


def test_forward_label_ld_size_settles() -> None:
    # The LD's value (a code label after a long run of code) only becomes known
    # in a later pass; its final form must match its final value.
    body = "\n".join(["DROP HL"] * 600)
    img = assemble(f"LD HL, far\n{body}\nfar: RET\n")
    ws = words(img.code)
    assert ws[0] == (0x70 << 24) | 0x800 and ws[1] == 4 * 602
    assert img.code[4 * 602:] == struct.pack("<I", 0x01 << 24)


def test_branch_displacements_and_range() -> None:
    def back(k: int) -> str:  # JR at word k back to word 0
        return "top: " + "\n".join(["DROP HL"] * k) + "\nJR top\nRET\n"

    assert words(assemble(back(2048)).code)[2048] == w(0x02, imm=-2048)
    with pytest.raises(AsmError) as exc:
        assemble(back(2049))
    assert exc.value.code == "ASM_RANGE" and exc.value.line == 2050 and "top" in exc.value.message

    def fwd(k: int) -> str:  # CALL at word 0 forward to word k
        return "CALL end\n" + "\n".join(["DROP HL"] * (k - 1)) + "\nend: RET\n"

    assert words(assemble(fwd(2047)).code)[0] == w(0x00, imm=2047)
    with pytest.raises(AsmError) as exc:
        assemble(fwd(2048))
    assert exc.value.code == "ASM_RANGE" and exc.value.line == 1 and "end" in exc.value.message


def test_jr_condition_names() -> None:
    src = "".join(f"JR {c}, t\n" for c in COND_NAMES) + "t: RET\n"
    ws = words(assemble(src).code)
    for i, _ in enumerate(COND_NAMES):
        assert (ws[i] >> 16) & 0xF == i
    assert ws[0] == w(0x02, 0, 0, 0, len(COND_NAMES))
    assert words(assemble("JR t\nt: RET\n").code)[0] == w(0x02, imm=1)
    assert words(assemble("JR EQ, t\nt: RET\n").code)[0] == w(0x02, rs1=1, imm=1)


def test_memory_operand_forms() -> None:
    src = "LD8U A, (HL)\nLD8U A, (HL+4)\nLD8U A, (HL-4)\nLD8U A, (HL + OFF - 1)\nST8 (de), a\nRET\nOFF EQU 10\n"
    ws = words(assemble(src).code)
    assert [x & 0xFFF for x in ws[:4]] == [0, 4, 0xFFC, 9]
    assert ws[4] == w(0x80, A, DE, A, 0)


def test_labels_comments_equ_and_sharing_lines() -> None:
    src = """
; full-line comment
start:  LD A, N ; trailing comment with "quotes" and 'c'
N EQU 5 + 2 - 1
two: three: DEC A
        JR ne, three
        RET
"""
    img = assemble(src)
    ws = words(img.code)
    assert ws[0] == w(0x70, A, 0, 0, 6)
    assert ws[2] == w(0x02, 0, 2, 0, -1)
    assert img.entry_pc == 0 and img.exports == {}


def test_public_entry_and_defaults() -> None:
    img = assemble("DROP HL\nmain: RET\nother: RET\n PUBLIC main, other\n")
    assert img.exports == {"main": 4, "other": 8} and img.entry_pc == 4
    img = assemble("PUBLIC other\nDROP HL\nother: RET\n")
    assert img.entry_pc == 0
    img = assemble("ENTRY b\nPUBLIC main\nmain: RET\nb: RET\n")
    assert img.entry_pc == 4 and img.exports == {"main": 0}
    img = assemble('PUBLIC "odd name", x\nx: RET\n')
    assert img.exports == {"odd name": 0}


def test_imports_are_automatic_and_overridable() -> None:
    img = assemble("IN\nOUT\nCTL\nRET\n")
    assert img.imports == 0b100011
    assert assemble("RET\n").imports == 0
    assert assemble("IMPORTS NONE\nOUT\nRET\n").imports is None
    assert assemble("IMPORTS 0x3\nRET\n").imports == 3
    # an LD extension word that looks like a primitive is not one
    assert assemble("LD HL, 0xF1000000\nRET\n").imports == 0


def test_memory_directive() -> None:
    img = assemble("MEMORY 65536, 131072\nRET\n")
    assert (img.mem_min, img.mem_max) == (65536, 131072)
    img = assemble("MEMORY 0x20000\nRET\n")
    assert (img.mem_min, img.mem_max) == (0x20000, None)
    assert assemble("RET\n").mem_min is None


def test_data_directives_and_labels() -> None:
    src = """
msg:    DB "Hi", 0, -1, 'x'
words:  DW 0x1234, -2
        DD 0xdeadbeef
        DQ -1
after:
        RESB 5
        ALIGN 8
al:     DB 9
main:   LD HL, msg
        LD DE, after
        LD BC, al
        RET
"""
    img = assemble(src)
    assert img.segments == (SegmentDesc(
        "data.0", 0x1000, 0x20 + 1, "rw",
        b"Hi\x00\xff" + b"x" + b"\x34\x12\xfe\xff" + b"\xef\xbe\xad\xde" + b"\xff" * 8
        + bytes(5) + bytes(6) + b"\x09"),)
    ws = words(img.code)
    assert ws[1] == 0x1000 and ws[3] == 0x1000 + 21 and ws[5] == 0x1020


def test_org_starts_segments_and_contiguous_runs_merge() -> None:
    src = """
        DB 1
        ORG 0x1001
        DB 2
        ORG 0x3000
x:      DB 3
        ORG 0x2000
        DB 4
        RET
"""
    segs = assemble(src).segments
    assert [(s.name, s.base, s.init) for s in segs] == [
        ("data.0", 0x1000, b"\x01\x02"), ("data.1", 0x3000, b"\x03"), ("data.2", 0x2000, b"\x04")]
    assert all(s.perms == "rw" and s.size == len(s.init or b"") for s in segs)


def test_explicit_segments() -> None:
    src = """
        ORG 0x2000
        SEGMENT rodata, r
table:  DB 1, 2, 3
        ENDS
        SEGMENT "bss", "rw", 64
        ENDS
        DB 7
        SEGMENT tail, rw, 8
        DB 1
        ENDS
main:   LD HL, table
        RET
"""
    segs = assemble(src).segments
    assert segs == (
        SegmentDesc("rodata", 0x2000, 3, "r", b"\x01\x02\x03"),
        SegmentDesc("bss", 0x2003, 64, "rw", None),
        SegmentDesc("data.0", 0x2043, 1, "rw", b"\x07"),
        SegmentDesc("tail", 0x2044, 8, "rw", b"\x01"),
    )


def test_debug_lines_and_name() -> None:
    img = assemble("\n  LD HL, 5000\n\nlbl:\n  RET\n", "dir/prog.s")
    assert img.debug == {0: DebugLine("dir/prog.s", 2), 8: DebugLine("dir/prog.s", 5)}
    assert img.name == "prog" and img.source_format == "asm"
    img = assemble("DEBUG 0, 77, \"orig.c\"\nRET\n")
    assert img.debug == {0: DebugLine("orig.c", 77)}
    assert assemble("DEBUG NONE\nRET\n").debug == {}


def test_word_directive() -> None:
    img = assemble("WORD 0xFFFFFFFF, -1\nRET\n")
    assert words(img.code) == [0xFFFF_FFFF, 0xFFFF_FFFF, 0x0100_0000]


ERRORS = [
    ("RET\nFOO HL\n", "ASM_SYNTAX", 2, "FOO"),
    ("RET\nADD HL\n", "ASM_SYNTAX", 2, "ADD"),
    ("ADD HL, DE, 5\n", "ASM_SYNTAX", 1, "'5'"),
    ("MOV HL, (DE)\n", "ASM_SYNTAX", 1, "(DE)"),
    ("LD HL, \"str\"\n", "ASM_SYNTAX", 1, "\"str\""),
    ("LD8U A, HL\n", "ASM_SYNTAX", 1, "HL"),
    ("LD8U A, (5)\n", "ASM_SYNTAX", 1, "(5)"),
    ("LD8U A, (HL*2)\n", "ASM_SYNTAX", 1, "*"),
    ("JR maybe, x\nx: RET\n", "ASM_SYNTAX", 1, "maybe"),
    ('DB "abc\n', "ASM_SYNTAX", 1, "abc"),
    ("DB 'ab'\n", "ASM_SYNTAX", 1, "'a"),
    ("DW \"no\"\n", "ASM_SYNTAX", 1, "DW"),
    ("RET\n\nLD HL, 12abc\n", "ASM_SYNTAX", 3, "12abc"),
    ("ADD HL, DE,, A\n", "ASM_SYNTAX", 1, "empty operand"),
    ("ENDS\n", "ASM_SYNTAX", 1, "ENDS"),
    ("SEGMENT x\nDB 1\n", "ASM_SYNTAX", 1, "'x'"),
    ("SEGMENT x, wx\nENDS\n", "ASM_SYNTAX", 1, "wx"),
    ("RET\nCPI HL, 2048\n", "ASM_RANGE", 2, "2048"),
    ("CPI HL, -2049\n", "ASM_RANGE", 1, "-2049"),
    ("SLA HL, HL, 32\n", "ASM_RANGE", 1, "32"),
    ("SLA64 HL, HL, 64\n", "ASM_RANGE", 1, "64"),
    ("SRL HL, HL, -1\n", "ASM_RANGE", 1, "-1"),
    ("LD8U A, (HL+2048)\n", "ASM_RANGE", 1, "2048"),
    ("LD HL, 0x10000000000000000\n", "ASM_RANGE", 1, "0x10000000000000000"),
    ("DB 256\n", "ASM_RANGE", 1, "256"),
    ("DW 65536\n", "ASM_RANGE", 1, "65536"),
    ("DB 1\nORG 0x1000\nDB 2\n", "ASM_RANGE", 3, "overlaps"),
    ("ALIGN 3\n", "ASM_RANGE", 1, "ALIGN 3"),
    ("ORG -1\n", "ASM_RANGE", 1, "ORG"),
    ("SEGMENT s, r, 1\nDB 1, 2\nENDS\n", "ASM_RANGE", 3, "'s'"),
    ("JR x\n", "ASM_LABEL", 1, "'x'"),
    ("CALL nowhere\nRET\n", "ASM_LABEL", 1, "nowhere"),
    ("x: RET\nx: RET\n", "ASM_LABEL", 2, "'x'"),
    ("A: RET\n", "ASM_LABEL", 1, "'A'"),
    ("d: DB 1\nJR d\n", "ASM_LABEL", 2, "'d'"),
    ("PUBLIC d\nd: DB 1\nRET\n", "ASM_LABEL", 1, "'d'"),
    ("PUBLIC missing\nRET\n", "ASM_LABEL", 1, "missing"),
    ("p EQU q + 1\nq EQU p\n", "ASM_LABEL", 1, "p -> q -> p"),
    ("PUBLIC x\nPUBLIC x\nx: RET\n", "ASM_LABEL", 2, "'x'"),
    ("SEGMENT data.0\nDB 1\nENDS\nDB 2\n", "ASM_LABEL", 4, "data.0"),
]


@pytest.mark.parametrize(("src", "code", "line", "token"), ERRORS, ids=[e[0][:24] for e in ERRORS])
def test_errors_have_code_line_and_token(src: str, code: str, line: int, token: str) -> None:
    with pytest.raises(AsmError) as exc:
        assemble(src, "bad.s")
    err = exc.value
    assert (err.code, err.line) == (code, line), str(err)
    assert token in err.message, err.message
    assert err.path == "bad.s"
    assert f"bad.s line {line}" in str(err)


def test_non_utf8_safe_and_no_traceback_on_weird_text() -> None:
    for src in ["\x00", "LD HL, ~1", "é: RET", "LD HL, (", "(", ")", ",", "#", "LD HL, #",
                "LD HL, 1 2", "x:: RET", "EQU 5", "x EQU", "DB", "PUBLIC", "ENTRY 5", "ORG",
                "MEMORY", "IMPORTS 1, 2", "DEBUG 1", "WORD", "JR", "RET RET"]:
        with pytest.raises(AsmError) as exc:
            assemble(src + "\n")
        assert exc.value.code in ("ASM_SYNTAX", "ASM_LABEL", "ASM_RANGE")
        assert exc.value.line == 1


# --------------------------------------------------------------- round-trip property

REGS = st.sampled_from(REG_NAMES)


@st.composite
def programs(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 40))
    lines: list[str] = []
    for i in range(n):
        op = draw(st.sampled_from(OPS))
        f = op.fmt
        target = f"l{draw(st.integers(0, n))}"
        r = [draw(REGS) for _ in range(3)]
        if f is Fmt.CALL:
            text = f"CALL {target}"
        elif f is Fmt.JR:
            text = f"JR {draw(st.sampled_from(COND_NAMES))}, {target}"
        elif f is Fmt.NONE:
            text = op.mnemonic
        elif f in (Fmt.DROP, Fmt.INCDEC, Fmt.UNARY):
            text = f"{op.mnemonic} {r[0]}"
        elif f in (Fmt.CP, Fmt.MOV):
            text = f"{op.mnemonic} {r[0]}, {r[1]}"
        elif f is Fmt.CPI:
            text = f"{op.mnemonic} {r[0]}, {draw(st.integers(-2048, 2047))}"
        elif f is Fmt.RRR:
            text = f"{op.mnemonic} {r[0]}, {r[1]}, {r[2]}"
        elif f is Fmt.SHIFT:
            text = f"{op.mnemonic} {r[0]}, {r[1]}, {draw(st.integers(0, op.width - 1))}"
        elif f is Fmt.LDI:
            value = draw(st.one_of(st.integers(-(1 << 63), (1 << 64) - 1), st.integers(-3000, 3000),
                                   st.sampled_from([-2048, -2047, 1 << 31, -(1 << 31)])))
            text = f"{op.mnemonic} {r[0]}, {value}"
        elif f is Fmt.LOAD:
            text = f"{op.mnemonic} {r[0]}, ({r[1]}{draw(st.integers(-2048, 2047)):+d})"
        else:
            text = f"{op.mnemonic} ({r[1]}{draw(st.integers(-2048, 2047)):+d}), {r[0]}"
        lines.append(f"l{i}: {text}")
    lines.append(f"l{n}: RET")
    if draw(st.booleans()):
        lines.insert(0, "PUBLIC l0")
    if draw(st.booleans()):
        lines.insert(0, f"ENTRY l{n}")
    for _ in range(draw(st.integers(0, 3))):
        base = draw(st.integers(0, 0xFFFF))
        data = draw(st.binary(min_size=1, max_size=40))
        lines.append(f"ORG {base * 64}\nDB {', '.join(str(b) for b in data)}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_round_trip_asm_bytes_disasm_asm(src: str) -> None:
    try:
        img = assemble(src, "gen.s")
    except AsmError as err:  # overlapping random data is the only expected failure
        assert err.code == "ASM_RANGE" and "overlaps" in err.message
        return
    verify(img)
    blob = write_zasm_bin(img)
    listing = disassemble(read_zasm_bin(blob))
    again = assemble(listing, "listing.s")
    assert write_zasm_bin(again) == blob
    assert again.segments == img.segments and again.exports == img.exports
    assert again.debug == img.debug and again.entry_pc == img.entry_pc


def test_examples_assemble_and_verify() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "examples"
    names = sorted(p.name for p in root.glob("*.s"))
    assert {"hello.s", "loop.s", "upper.s", "call.s"} <= set(names)
    for name in names:
        img = assemble((root / name).read_text(), name)
        prog = verify(img)
        assert prog.instrs
        assert assemble(disassemble(img)).code == img.code


def test_table_has_every_mnemonic_once() -> None:
    assert len(BY_MNEMONIC) == len(OPS)


def test_reference_toolchain_forms() -> None:
    src = """
main:   LD A, (HL)
        LD DE, (IX+4)
        LD (HL), A
        LD (BC-1), DE
        LD BC, DE
        CP HL, #97
        JR LTS, main
        JR GES, main
        ADD HL, DE
        LTU64 A, IX
        SLA64 BC, 3
        CALL _out
        CALL _ctl
        RET
size:   EQU 16
msg:    STR "Hi", 10
"""
    ref = assemble(src)
    base = assemble("""
main:   LD8U A, (HL)
        LD32 DE, (IX+4)
        ST8 (HL), A
        ST32 (BC-1), DE
        MOV BC, DE
        CPI HL, 97
        JR lt, main
        JR ge, main
        ADD HL, HL, DE
        LTU64 A, A, IX
        SLA64 BC, BC, 3
        OUT
        CTL
        RET
size    EQU 16
msg:    DB "Hi", 10
""")
    assert ref.code == base.code and ref.segments == base.segments
    assert ref.imports == 0b100010
    # a label named like a primitive is an ordinary call target
    img = assemble("CALL _out\nRET\n_out: RET\n")
    assert words(img.code)[0] == w(0x00, imm=2)


def test_every_format_has_a_layout() -> None:
    from zjit.asm.syntax import LAYOUTS

    assert set(LAYOUTS) == set(Fmt)


@pytest.mark.parametrize(("name", "stdin", "expected"), [
    ("hello.s", b"", b"Hello, world!\n"),
    ("loop.s", b"", b"5050\n"),
    ("upper.s", b"Mixed case, 123 {z}\n" * 20, b"MIXED CASE, 123 {Z}\n" * 20),
    ("call.s", b"", b"calling a function\n7 squared is 49\n"),
])
def test_examples_run(name: str, stdin: bytes, expected: bytes) -> None:
    from pathlib import Path

    import zjit

    src = (Path(__file__).resolve().parent.parent / "examples" / name).read_text()
    module = zjit.Engine(zjit.Policy(fuel=1_000_000), backend="interp").load(assemble(src, name))
    result = module.instantiate(stdin=stdin).run()
    assert result.ok and result.stdout == expected
