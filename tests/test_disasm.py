"""Disassembler: listings reassemble to the same image, for valid and invalid CODE."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zjit.verifier import verify

from zjit.asm import assemble, disassemble
from zjit.errors import VerifyError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import OPS


def code(*ws: int) -> bytes:
    return struct.pack(f"<{len(ws)}I", *ws)


RET = 0x0100_0000


def same_image(a: ModuleImage, b: ModuleImage) -> None:
    assert a.code == b.code
    assert a.entry_pc == b.entry_pc
    assert a.exports == b.exports and list(a.exports) == list(b.exports)
    assert a.imports == b.imports
    assert (a.mem_min, a.mem_max) == (b.mem_min, b.mem_max)
    assert a.segments == b.segments
    assert a.debug == b.debug


def round_trip(img: ModuleImage) -> str:
    text = disassemble(img)
    same_image(assemble(text, "listing.s"), img)
    return text


def body(text: str) -> list[str]:
    """Listing lines without comments, stripped, blank lines dropped."""
    out = [ln.split(";")[0].strip() for ln in text.splitlines()]
    return [ln for ln in out if ln]


def test_labels_for_targets_and_exports() -> None:
    img = assemble("PUBLIC main\nmain: JR lt, skip\nCALL fn\nskip: RET\nfn: RET\n")
    text = round_trip(img)
    lines = body(text)
    assert "PUBLIC main" in lines and "main:" in lines
    assert "JR lt, L_0008" in lines and "CALL L_000c" in lines
    assert "L_0008:" in lines and "L_000c:" in lines
    assert "ENTRY" not in text


def test_branch_to_export_uses_its_name() -> None:
    img = assemble("PUBLIC loop\nloop: DEC A\nJR ne, loop\nRET\n")
    assert "JR ne, loop" in body(round_trip(img))


def test_odd_export_names_use_the_string_form() -> None:
    img = ModuleImage(code=code(RET, RET, RET), exports={"two words": 4, "HL": 8, "L_0004": 0})
    lines = body(round_trip(img))
    assert 'PUBLIC "two words", L_0004' in lines
    assert 'PUBLIC "HL", L_0008' in lines
    assert 'PUBLIC "L_0004", L_0000' in lines


def test_entry_imports_memory_and_debug_directives() -> None:
    img = ModuleImage(code=code(0xF100_0000, RET), entry_pc=4, imports=None, mem_min=65536, mem_max=0)
    lines = body(round_trip(img))
    assert "ENTRY L_0004" in lines and "IMPORTS NONE" in lines
    assert "MEMORY 65536, 0" in lines and "DEBUG NONE" in lines
    img = ModuleImage(code=code(RET), imports=0x5)
    assert "IMPORTS 0x5" in body(round_trip(img))
    img = ModuleImage(code=code(RET), imports=0)
    assert not any(ln.startswith("IMPORTS") for ln in body(round_trip(img)))


def test_debug_table_is_kept() -> None:
    img = assemble("  LD HL, 1\n\n  RET\n", "src/prog.s")
    text = round_trip(img)
    assert 'DEBUG 0x0000, 1, "src/prog.s"' in body(text)
    assert "src/prog.s:3" in text  # the source line shows in the instruction comment
    img = ModuleImage(code=code(RET), debug={0: DebugLine('we"ird\\name', 9)})
    round_trip(img)


@pytest.mark.parametrize(("word", "why"), [
    (0x0A00_0000, "invalid opcode"),
    (0xFF12_3456, "invalid opcode"),
    (0x0312_3000, "CP"),          # RD differs from RS1
    (0x0100_0001, "RET"),         # non-zero immediate
    (0x0790_0000, "MOV"),         # register 9
    (0x3000_0020, "SLA"),         # count 32, and RS2 != RS1 is fine here (both 0)
    (0x0200_B001, "JR"),          # condition 11
    (0x7150_0000, "LD8U"),        # base register 5 in RD
])
def test_invalid_words_are_listed_raw(word: int, why: str) -> None:
    img = ModuleImage(code=code(word, RET))
    text = round_trip(img)
    line = next(ln for ln in text.splitlines() if f"WORD {word:#010x}" in ln)
    assert why in line


def test_non_canonical_ld_forms_are_raw() -> None:
    # LD HL, 5 written with the 64-bit form; and with the 32-bit form
    for ws in [(0x7000_0801, 5, 0), (0x7000_0800, 5), (0x7000_0800, 0xFFFF_F800 + 0)]:
        img = ModuleImage(code=code(*ws, RET))
        text = round_trip(img)
        if ws == (0x7000_0800, 0xFFFF_F800):
            assert "LD HL, -2048" in text  # canonical: -2048 needs the IMM32 form
        else:
            assert "non-canonical" in text


def test_truncated_ld_and_targets_outside_code() -> None:
    img = ModuleImage(code=code(RET, 0x7000_0801, 1))
    assert "past the end" in round_trip(img)
    img = ModuleImage(code=code(0x0000_0010, RET))  # CALL +16 words: outside CODE
    assert "outside CODE" in round_trip(img)
    img = ModuleImage(code=code(0x0200_0FFF, RET))  # JR -1 word: before CODE
    assert "outside CODE" in round_trip(img)
    img = ModuleImage(code=code(0x0200_0001))       # JR to the end of CODE
    assert "JR L_0004" in body(round_trip(img))


def test_references_into_ld_extension_words_split_it() -> None:
    # JR to the middle of a 3-word LD; and an export pointing inside one.
    img = ModuleImage(code=code(0x0200_0002, 0x7000_0801, 0x1234_5678, 0x9, RET))
    text = round_trip(img)
    assert "LD split" in text and "L_0008:" in text
    img = ModuleImage(code=code(0x7000_0800, 0x1234, RET), exports={"odd": 4})
    assert "odd:" in body(round_trip(img))


def test_accepts_verified_programs() -> None:
    img = assemble("PUBLIC main\nmain: LD HL, 0x12345\nRET\n")
    assert disassemble(verify(img)) == disassemble(img)


def test_unlistable_images_raise() -> None:
    with pytest.raises(VerifyError) as exc:
        disassemble(ModuleImage(code=b"\x01\x00\x00\x01\x00"))
    assert exc.value.code == "CODE_ALIGN" and exc.value.offset == 4
    with pytest.raises(VerifyError) as exc:
        disassemble(ModuleImage(code=code(RET), exports={"f": 64}))
    assert exc.value.code == "BAD_EXPORT" and exc.value.pc == 64
    with pytest.raises(VerifyError) as exc:
        disassemble(ModuleImage(code=code(RET), entry_pc=2))
    assert exc.value.code == "BAD_ENTRY"
    with pytest.raises(TypeError):
        disassemble(object())


def test_segments_plain_and_explicit() -> None:
    segs = (
        SegmentDesc("data.0", 0x1000, 4, "rw", b"abcd"),
        SegmentDesc("data.1", 0x1004, 2, "rw", b"\x00\x01"),       # adjacent: must stay apart
        SegmentDesc("const", 0x2000, 16, "r", b"\x7f" * 3),        # init shorter than size
        SegmentDesc("bss", 0x3000, 4096, "rw", None),
        SegmentDesc("code", 0x8000, 8, "rx", b"\x01\x00\x00\x01" * 2),
        SegmentDesc("data.2", 0x9000, 100, "rw", bytes(100)),       # long zero run -> RESB
    )
    img = ModuleImage(code=code(RET), segments=segs)
    lines = body(round_trip(img))
    assert 'DB "abcd"' in lines
    assert 'SEGMENT "data.1", "rw", 2' in lines
    assert 'SEGMENT "const", "r", 16' in lines and 'SEGMENT "bss", "rw", 4096' in lines
    assert "RESB 100" in lines


def test_empty_initial_bytes_are_noted() -> None:
    img = ModuleImage(code=code(RET), segments=(SegmentDesc("z", 0x1000, 8, "rw", b""),))
    text = disassemble(img)
    assert "note:" in text
    assert assemble(text).segments == (SegmentDesc("z", 0x1000, 8, "rw", None),)


def test_strings_with_quotes_and_backslashes() -> None:
    data = b'say "hi" \\ bye\x00\xff\x80 ok!'
    img = assemble("RET\nmsg: DB " + ", ".join(str(b) for b in data) + "\n")
    text = round_trip(img)
    assert '"say \\"hi\\" \\\\ bye"' in text


def test_rom_round_trip() -> None:
    from zjit.container.rom import read_rom, write_rom

    img = assemble("PUBLIC main\nmain: LD HL, msg\nLD DE, 3\nOUT\nRET\nmsg: DB \"abc\"\n", "r.s")
    blob = write_rom(img)
    listing = disassemble(read_rom(blob))
    assert write_rom(assemble(listing, "again.s")) == blob


valid_words = st.builds(
    lambda op, rest: (op.opcode << 24) | rest, st.sampled_from(OPS), st.integers(0, (1 << 24) - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(valid_words, st.integers(0, 0xFFFF_FFFF)), min_size=1, max_size=30),
       st.data())
def test_any_word_stream_round_trips(ws: list[int], data: st.DataObject) -> None:
    n = len(ws)
    entry = 4 * data.draw(st.integers(0, n))
    exports = {f"e{i}": 4 * data.draw(st.integers(0, n)) for i in range(data.draw(st.integers(0, 3)))}
    imports = data.draw(st.one_of(st.none(), st.integers(0, 63)))
    img = ModuleImage(code=code(*ws), entry_pc=entry, exports=exports, imports=imports)
    round_trip(img)
