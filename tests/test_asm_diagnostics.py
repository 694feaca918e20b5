"""Assembler help: every error of a file, "did you mean" hints, the label binding rule
and its warning."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zjit.asm import assemble, disassemble
from zjit.errors import WARNING_CODES, AsmError, AsmWarning


def errors_of(src: str) -> list[AsmError]:
    with pytest.raises(AsmError) as info:
        assemble(src, "e.s")
    assert info.value.errors[0] is info.value
    return list(info.value.errors)


def test_every_error_of_a_file_is_reported_in_line_order() -> None:
    src = """\
        PUBLIC main
main:   LD8 A, (HL)
        JR nowhere
x EQU 1 +
        LD HL, x
msg:    DB "open
        LD HL, msg
        CPI HL, 5000
        RET
main:   RET
"""
    got = [(e.line, e.code) for e in errors_of(src)]
    assert got == [(2, "ASM_SYNTAX"), (3, "ASM_LABEL"), (4, "ASM_SYNTAX"), (6, "ASM_SYNTAX"),
                   (8, "ASM_RANGE"), (10, "ASM_LABEL")]


def test_a_line_that_fails_keeps_its_labels_and_size() -> None:
    # main, x and msg are still defined (no follow-on "undefined symbol"), and the
    # broken instruction keeps its place so the branch distance stays right
    errs = errors_of("PUBLIC main\nmain: FROB HL\nx EQU )\nmsg: DB \"a\nLD HL, x\nLD HL, msg\nJR main\n")
    assert [(e.line, e.code) for e in errs] == [(2, "ASM_SYNTAX"), (3, "ASM_SYNTAX"), (4, "ASM_SYNTAX")]


def test_errors_in_layout_dependent_places_are_each_reported_once() -> None:
    errs = errors_of("JR far\nJR far\n" + "DROP HL\n" * 2100 + "far: RET\n")
    assert [(e.line, e.code) for e in errs] == [(1, "ASM_RANGE"), (2, "ASM_RANGE")]


def test_many_errors_are_kept_up_to_a_limit() -> None:
    with pytest.raises(AsmError) as info:
        assemble("BAD\n" * 1200)
    assert len(info.value.errors) == 1000 and info.value.omitted == 200
    assert info.value.errors[-1].line == 1000


@pytest.mark.parametrize(("src", "hint"), [
    ("LD8 A, (HL)\n", "did you mean LD8U"),
    ("ld8 a, (hl)\n", "did you mean LD8U"),
    ("RETN\n", "did you mean RET"),
    ("MOVE HL, DE\n", "did you mean MOV"),
    ("ORGG 5\n", "did you mean ORG"),
    ("main: RET\nJR mian\n", "did you mean main"),
    ("Main: RET\nCALL main\n", "did you mean Main"),
    ("LD HL, countr\ncounter EQU 3\n", "did you mean counter"),
    ("LD B, 5\n", "did you mean BC"),
    ("ADD HX, DE\n", "did you mean HL or IX"),
    ("LD8U A, (HX)\n", "did you mean HL or IX"),
    ("ADD HL, DX\n", "did you mean DE or IX"),
])
def test_did_you_mean(src: str, hint: str) -> None:
    (err,) = errors_of(src)
    assert hint in err.message, err.message


def test_no_hint_when_nothing_is_close() -> None:
    (err,) = errors_of("FROBNICATE\n")
    assert "did you mean" not in err.message


STACK = """\
        PUBLIC main
stack:  RESB 64
stacktop:
main:   LD HL, stacktop
        RET
"""


def test_a_lone_label_binds_to_the_next_line_that_places_something() -> None:
    with warnings.catch_warnings(record=True):
        img = assemble(STACK, "st.s")
    assert img.exports == {"main": 0}
    # stacktop is the CODE offset of main (0), as the rule says, not 0x1040
    assert assemble("LD HL, 0\nRET\n").code == img.code
    data = assemble("main: LD HL, top\nRET\nbuf: RESB 4\ntop:\n  DB 1\n", "d.s")
    assert data.code == assemble("LD HL, 0x1004\nRET\n").code  # the next line is data


def test_the_ambiguous_binding_warns_with_a_stable_code() -> None:
    got: list[AsmWarning] = []
    assemble(STACK, "st.s", warn=got.append)
    (w,) = got
    assert (w.code, w.path, w.line) == ("ASM_LABEL_BINDING", "st.s", 3)
    assert w.code in WARNING_CODES
    assert "'stacktop'" in w.message and "0x1040" in w.message and "stacktop: RESB 0" in w.message
    # without a sink it is a Python warning at the source line
    with pytest.warns(AsmWarning) as record:
        assemble(STACK, "st.s")
    assert (record[0].filename, record[0].lineno) == ("st.s", 3)
    # at the end of the file too (binds to the end of CODE)
    got.clear()
    assemble("main: LD HL, heap\nRET\nbuf: RESB 8\nheap:\n", "h.s", warn=got.append)
    assert [w.line for w in got] == [4] and "the end of CODE" in got[0].message


@pytest.mark.parametrize("src", [
    STACK.replace("stacktop:\n", "stacktop: RESB 0\n"),     # the data address, said explicitly
    STACK.replace("stacktop:\nmain:", "stacktop: main:"),    # the code offset, said explicitly
    "buf: RESB 4\nmain:\n  CALL f\n  RET\nf: RET\n",        # after data, used only as a target
    "PUBLIC main\nbuf: RESB 4\n\nmain:\n  RET\n",          # exported, not used as a value
    "main: LD HL, top\n RET\ntop:\n DB 1\n",                # after code, binds to data
])
def test_no_warning_where_the_label_cannot_be_misread(src: str) -> None:
    got: list[AsmWarning] = []
    assemble(src, "ok.s", warn=got.append)
    assert got == []


def test_disassembler_listings_assemble_without_warnings() -> None:
    img = assemble('PUBLIC main\nmsg: DB "hi"\nmain: LD HL, msg\nJR next\nnext: CALL f\nRET\nf: RET\n')
    got: list[AsmWarning] = []
    assert assemble(disassemble(img), "l.s", warn=got.append).code == img.code
    assert got == []


def test_warnings_only_when_the_file_assembles() -> None:
    got: list[AsmWarning] = []
    with pytest.raises(AsmError):
        assemble(STACK + "FROB\n", "st.s", warn=got.append)
    assert got == []


def test_a_code_label_that_bound_to_data_says_why() -> None:
    (err,) = errors_of("main: JR done\ndone:\nmsg: DB 1\n")
    assert err.code == "ASM_LABEL" and err.line == 1
    assert "stands alone on line 2" in err.message and "the data on line 3" in err.message


def test_unregistered_warning_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        AsmWarning("NOPE", "x", path=None, line=1)


LINES = st.one_of(
    st.sampled_from(["main: LD HL, msg", "  RET", "msg: DB \"hi\", 10", "buf: RESB 8", "top:",
                     "  JR ne, main", "  CALL zi_write", "  ADD HL, #5", "  ST8 (HL), 7", "x EQU 3",
                     "  CP HL, x", "PUBLIC main", "  ORG 0x2000", "  LD A, (HL+1)", ""]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=25))
def test_any_text_gives_an_image_or_errors_in_line_order(lines: list[str]) -> None:
    src = "\n".join(lines) + "\n"
    got: list[AsmWarning] = []
    try:
        assemble(src, "h.s", warn=got.append)
    except AsmError as err:
        assert err.errors[0] is err and err.omitted == 0
        found = [e.line or 0 for e in err.errors]
        assert found == sorted(found) and all(1 <= n <= max(1, len(lines)) for n in found)
        assert all(e.path == "h.s" and e.code.startswith("ASM_") for e in err.errors)
        assert got == []
        return
    assert all(w.code in WARNING_CODES and 1 <= w.line <= len(lines) for w in got)
