"""`.zasm.bin` v2 reader and writer: layout, every error code, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zjit.container.zasm_bin import read_zasm_bin, write_zasm_bin
from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC, HL
from zjit.testing import fix_zasm, mutated

DATA_DIR = Path(__file__).parent / "data"

RET = pack(BY_MNEMONIC["RET"].opcode)
OUT = pack(BY_MNEMONIC["OUT"].opcode)
LD_HL_5 = ld_words(HL, 5)[0]
CODE2 = words_to_bytes([LD_HL_5, RET])


def build(
    sections: list[tuple[bytes, bytes]],
    *,
    entry_words: int = 0,
    gap: int = 0,
) -> bytearray:
    """Hand-encode a container the way the reference writer does: header, directory
    right after it, then the payloads back to back (``gap`` zero bytes between)."""
    dir_off = 40
    pos = dir_off + 20 * len(sections)
    directory = b""
    body = b""
    for tag, payload in sections:
        pos += gap
        body += bytes(gap)
        directory += struct.pack("<4sIIII", tag, pos, len(payload), 0, 0)
        body += payload
        pos += len(payload)
    total = dir_off + len(directory) + len(body)
    header = struct.pack("<4sHHIIIIIIII", b"ZASB", 2, 0, total, dir_off, len(sections),
                         entry_words, 0, 0, 0, 0)
    return bytearray(header + directory + body)


def expt(*entries: tuple[str, int]) -> bytes:
    out = struct.pack("<I", len(entries))
    for name, pcw in entries:
        raw = name.encode()
        out += struct.pack("<HBBI", len(raw), 0, 0, pcw) + raw
        out += bytes(-len(out) % 4)
    return out


def data_payload(*segs: tuple[int, bytes]) -> bytes:
    out = struct.pack("<I", len(segs))
    for dst, raw in segs:
        out += struct.pack("<II", dst, len(raw)) + raw
        out += bytes(-len(out) % 4)
    return out


def reference_code_only() -> bytes:
    return bytes(build([(b"CODE", CODE2)]))


def reference_code_data() -> bytes:
    return bytes(build([(b"CODE", CODE2), (b"DATA", data_payload((0x1000, b"hello"), (0x2000, b"\x01\x02\x03\x04")))]))


def err(data: bytes | bytearray) -> ZjitError:
    with pytest.raises(ZjitError) as info:
        read_zasm_bin(bytes(data))
    return info.value


# --------------------------------------------------------------------------- good files


def test_reference_shape_code_only() -> None:
    img = read_zasm_bin(reference_code_only())
    assert img.code == CODE2
    assert img.entry_pc == 0
    assert img.exports == {} and img.imports is None and img.mem_min is None
    assert img.segments == ()
    assert img.code_offset == 60
    assert img.source_format == "zasm"


def test_reference_shape_with_data() -> None:
    img = read_zasm_bin(reference_code_data())
    assert img.segments == (
        SegmentDesc("data.0", 0x1000, 5, "rw", b"hello"),
        SegmentDesc("data.1", 0x2000, 4, "rw", b"\x01\x02\x03\x04"),
    )


def test_checked_in_samples_match_builders() -> None:
    assert (DATA_DIR / "ref_code_only.zasm.bin").read_bytes() == reference_code_only()
    assert (DATA_DIR / "ref_code_data.zasm.bin").read_bytes() == reference_code_data()
    assert read_zasm_bin((DATA_DIR / "ref_code_data.zasm.bin").read_bytes()).segments[0].init == b"hello"


def test_header_entry_used_without_main() -> None:
    img = read_zasm_bin(bytes(build([(b"CODE", CODE2), (b"EXPT", expt(("f", 1)))], entry_words=1)))
    assert img.entry_pc == 4
    assert img.exports == {"f": 4}


def test_main_export_is_entry() -> None:
    img = read_zasm_bin(bytes(build([(b"CODE", CODE2), (b"EXPT", expt(("main", 1), ("g", 0)))], entry_words=1)))
    assert img.entry_pc == 4 and img.exports == {"main": 4, "g": 0}


def test_unknown_valid_tag_and_name_ignored() -> None:
    data = build([(b"CODE", CODE2), (b"NAME", b"whatever"), (b"XTRA", b"\xff" * 3), (b"ZERO", b"")])
    assert read_zasm_bin(bytes(data)).code == CODE2


def test_zero_length_payloads_overlap_nothing() -> None:
    data = build([(b"CODE", CODE2), (b"XTRA", b"")])
    # point the empty payload into the header: still fine
    struct.pack_into("<I", data, 40 + 20 + 4, 0)
    assert read_zasm_bin(bytes(data)).code == CODE2


def test_gaps_between_payloads_allowed() -> None:
    assert read_zasm_bin(bytes(build([(b"CODE", CODE2)], gap=8))).code == CODE2


def test_zero_length_data_segment_has_no_effect() -> None:
    img = read_zasm_bin(bytes(build([(b"CODE", CODE2), (b"DATA", data_payload((0x10, b""), (0x10, b"ab")))])))
    assert img.segments == (SegmentDesc("data.0", 0x10, 2, "rw", b"ab"),)


def test_imports_and_mem() -> None:
    img = read_zasm_bin(bytes(build([
        (b"CODE", CODE2), (b"IMPT", struct.pack("<II", 0b10, 0)), (b"MEM ", struct.pack("<II", 65536, 0)),
    ])))
    assert img.imports == 2 and img.mem_min == 65536 and img.mem_max == 0


# --------------------------------------------------------------------------- round trips


def full_image() -> ModuleImage:
    code = words_to_bytes([*ld_words(HL, 0x12345678), OUT, RET])
    return ModuleImage(
        code=code,
        entry_pc=8,
        exports={"main": 8, "start": 0, "é": 12},
        imports=0b10,
        mem_min=1 << 20,
        mem_max=4 << 20,
        segments=(
            SegmentDesc("data.0", 0x1000, 7, "rw", b"abcdefg"),
            SegmentDesc("data.1", 0x3000, 8, "rw", bytes(8)),
        ),
        debug={0: DebugLine("a.s", 1), 8: DebugLine("b.s", 7), 12: DebugLine("a.s", 9)},
        source_format="zasm",
        code_offset=40 + 20 * 6,
    )


def test_round_trip_full() -> None:
    img = full_image()
    blob = write_zasm_bin(img)
    assert read_zasm_bin(blob) == img
    assert write_zasm_bin(read_zasm_bin(blob)) == blob  # deterministic


def test_round_trip_minimal() -> None:
    img = ModuleImage(code=CODE2, source_format="zasm", code_offset=60)
    blob = write_zasm_bin(img)
    assert blob == reference_code_only()
    assert read_zasm_bin(blob) == img


def test_writer_zero_fills_segments() -> None:
    img = ModuleImage(code=CODE2, segments=(SegmentDesc("bss", 0x100, 6, "rw", None),
                                            SegmentDesc("d", 0x200, 4, "rw", b"xy")))
    back = read_zasm_bin(write_zasm_bin(img))
    assert back.segments == (SegmentDesc("data.0", 0x100, 6, "rw", bytes(6)),
                             SegmentDesc("data.1", 0x200, 4, "rw", b"xy\0\0"))


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (ModuleImage(code=b""), "CODE_ALIGN"),
        (ModuleImage(code=CODE2, entry_pc=2), "BAD_ENTRY"),
        (ModuleImage(code=CODE2, exports={"main": 4}), "ENTRY_MISMATCH"),
        (ModuleImage(code=CODE2, exports={"x": 3}), "BAD_EXPORT"),
        (ModuleImage(code=CODE2, exports={"": 0}), "BAD_NAME"),
        (ModuleImage(code=CODE2, imports=1 << 6), "BAD_IMPORTS"),
        (ModuleImage(code=CODE2, mem_min=100), "BAD_MEM"),
        (ModuleImage(code=CODE2, mem_max=1 << 20), "BAD_MEM"),
        (ModuleImage(code=CODE2, segments=(SegmentDesc("ro", 0, 4, "r", b"abcd"),)), "BAD_DATA"),
    ],
)
def test_writer_rejects_unrepresentable(image: ModuleImage, code: str) -> None:
    with pytest.raises(ZjitError) as info:
        write_zasm_bin(image)
    assert info.value.code == code


# --------------------------------------------------------------------------- errors


def test_bad_magic() -> None:
    e = err(b"ZASX" + bytes(36))
    assert (e.code, e.offset) == ("BAD_MAGIC", 0)
    assert err(b"ZA").code == "BAD_MAGIC"


def test_truncated_header() -> None:
    e = err(b"ZASB\x02\x00")
    assert (e.code, e.offset) == ("TRUNCATED", 6)


@pytest.mark.parametrize(
    ("fmt", "at", "value", "code", "offset"),
    [
        ("<H", 4, 1, "BAD_VERSION", 4),
        ("<H", 6, 1, "BAD_FLAGS", 6),
        ("<I", 8, 999, "BAD_LENGTH", 8),
        ("<I", 32, 1, "BAD_RESERVED", 32),
        ("<I", 36, 1, "BAD_RESERVED", 36),
        ("<I", 12, 20, "BAD_DIRECTORY", 12),
        ("<I", 12, 10_000, "BAD_DIRECTORY", 12),
        ("<I", 16, 50, "BAD_DIRECTORY", 16),
        ("<I", 16, 0, "MISSING_CODE", 40),
        ("<I", 40 + 12, 1, "BAD_FLAGS", 52),
        ("<I", 40 + 16, 1, "BAD_RESERVED", 56),
        ("<I", 40 + 4, 1000, "BAD_RANGE", 44),
        ("<I", 40 + 8, 1000, "BAD_RANGE", 44),
        ("<I", 40 + 4, 8, "OVERLAP_PAYLOAD", 44),     # into the header
        ("<I", 40 + 4, 56, "OVERLAP_PAYLOAD", 44),    # into the directory
        ("<I", 40 + 8, 0, "EMPTY_CODE", 60),
        ("<I", 40 + 8, 6, "CODE_ALIGN", 60),
    ],
)
def test_header_and_directory_errors(fmt: str, at: int, value: int, code: str, offset: int) -> None:
    data = build([(b"CODE", CODE2)])
    struct.pack_into(fmt, data, at, value)
    e = err(data)
    assert (e.code, e.offset) == (code, offset)


def test_range_past_end_of_file_with_huge_values() -> None:
    data = build([(b"CODE", CODE2)])
    struct.pack_into("<II", data, 44, 0xFFFF_FFF0, 0x20)
    e = err(data)
    assert (e.code, e.offset) == ("BAD_RANGE", 44)


def test_payload_overlap_between_sections() -> None:
    data = build([(b"CODE", CODE2), (b"XTRA", b"abcd")])
    struct.pack_into("<I", data, 60 + 4, 64)  # XTRA starts inside CODE
    e = err(data)
    assert (e.code, e.offset) == ("OVERLAP_PAYLOAD", 64)


def test_unknown_tag_with_bad_flags_rejected() -> None:
    data = build([(b"CODE", CODE2), (b"XTRA", b"abcd")])
    struct.pack_into("<I", data, 60 + 12, 7)
    e = err(data)
    assert (e.code, e.offset) == ("BAD_FLAGS", 72)


@pytest.mark.parametrize("tag", [b"CODE", b"XTRA"])
def test_duplicate_tags(tag: bytes) -> None:
    secs = [(b"CODE", CODE2)] if tag == b"CODE" else [(b"CODE", CODE2), (tag, b"")]
    data = build([*secs, (tag, b"")])
    e = err(data)
    assert (e.code, e.offset) == ("DUPLICATE_TAG", 40 + 20 * len(secs))


def test_missing_code() -> None:
    e = err(build([(b"XTRA", b"abcd")]))
    assert (e.code, e.offset) == ("MISSING_CODE", 40)


def test_entry_mismatch() -> None:
    e = err(build([(b"CODE", CODE2), (b"EXPT", expt(("main", 1)))], entry_words=0))
    assert (e.code, e.offset) == ("ENTRY_MISMATCH", 20)


EXPT_AT = 40 + 40 + 8  # header, 2 entries, CODE2


@pytest.mark.parametrize(
    ("payload", "code", "rel"),
    [
        (struct.pack("<I", 1), "BAD_SECTION", 4),                               # truncated entry
        (expt(("ab", 0))[:-1], "BAD_SECTION", 14),                               # padding cut
        (expt(("ab", 0)) + b"\0\0\0\0", "BAD_SECTION", 16),                      # left over
        (struct.pack("<IHBBI", 1, 1, 1, 0, 0) + b"a\0\0\0", "BAD_SECTION", 6),   # kind 1
        (struct.pack("<IHBBI", 1, 1, 0, 9, 0) + b"a\0\0\0", "BAD_RESERVED", 7),  # reserved
        (struct.pack("<IHBBI", 1, 1, 0, 0, 0) + b"a\0\x01\0", "BAD_SECTION", 14),  # padding byte
        (struct.pack("<IHBBI", 1, 2, 0, 0, 0) + b"\xff\xfe\0\0", "BAD_NAME", 12),  # not UTF-8
        (struct.pack("<IHBBI", 1, 0, 0, 0, 0), "BAD_NAME", 12),                  # empty
        (expt(("f", 0), ("f", 1)), "BAD_NAME", 24),                              # duplicate
    ],
)
def test_export_errors(payload: bytes, code: str, rel: int) -> None:
    e = err(build([(b"CODE", CODE2), (b"EXPT", payload)]))
    assert (e.code, e.offset) == (code, EXPT_AT + rel)


@pytest.mark.parametrize(
    ("payload", "code", "rel"),
    [
        (struct.pack("<I", 1), "BAD_IMPORTS", 0),
        (struct.pack("<II", 1 << 6, 0), "BAD_IMPORTS", 0),
        (struct.pack("<II", 1, 1), "BAD_IMPORTS", 4),
    ],
)
def test_import_errors(payload: bytes, code: str, rel: int) -> None:
    e = err(build([(b"CODE", CODE2), (b"IMPT", payload)]))
    assert (e.code, e.offset) == (code, EXPT_AT + rel)


@pytest.mark.parametrize(
    ("payload", "rel"),
    [
        (struct.pack("<III", 65536, 0, 0), 0),
        (struct.pack("<II", 65535, 0), 0),
        (struct.pack("<II", 65536 * 2, 65536), 4),
    ],
)
def test_mem_errors(payload: bytes, rel: int) -> None:
    e = err(build([(b"CODE", CODE2), (b"MEM ", payload)]))
    assert (e.code, e.offset) == ("BAD_MEM", EXPT_AT + rel)


@pytest.mark.parametrize(
    ("payload", "rel", "segs"),
    [
        (struct.pack("<I", 2) + struct.pack("<II", 0, 1) + b"a\0\0\0", 16, ()),      # second missing
        (data_payload((0, b"abc")) + b"\0\0\0\0", 16, ()),                           # left over
        (struct.pack("<III", 1, 0, 2) + b"ab\0\x01", 15, ()),                        # padding
        (struct.pack("<III", 1, 0, 9) + b"ab", 12, ()),                              # bytes cut
        (data_payload((0x10, b"abcd"), (0x12, b"z")), 16, ("data.0", "data.1")),     # overlap
    ],
)
def test_data_errors(payload: bytes, rel: int, segs: tuple[str, ...]) -> None:
    e = err(build([(b"CODE", CODE2), (b"DATA", payload)]))
    assert (e.code, e.offset, e.segments) == ("BAD_DATA", EXPT_AT + rel, segs)


@pytest.mark.parametrize(
    ("payload", "code", "rel"),
    [
        (struct.pack("<IH", 1, 1) + b"a\0" + struct.pack("<IIIIIII", 2, 4, 1, 0, 0, 1, 0), "BAD_SECTION", 24),  # pc order
        (struct.pack("<IH", 1, 1) + b"a\0" + struct.pack("<IIII", 1, 8, 1, 0), "BAD_SECTION", 12),  # pc past CODE
        (struct.pack("<IH", 1, 1) + b"a\0" + struct.pack("<IIII", 1, 0, 1, 1), "BAD_SECTION", 20),  # source index
        (struct.pack("<IH", 1, 0) + b"\0\0" + struct.pack("<I", 0), "BAD_NAME", 6),
        (struct.pack("<IH", 1, 1) + b"a\0" + struct.pack("<II", 1, 0), "BAD_SECTION", 16),         # truncated
    ],
)
def test_debug_errors(payload: bytes, code: str, rel: int) -> None:
    e = err(build([(b"CODE", CODE2), (b"ZDBG", payload)]))
    assert (e.code, e.offset) == (code, EXPT_AT + rel)


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_zjit_errors(data: bytes) -> None:
    with contextlib.suppress(ZjitError):
        read_zasm_bin(data)


SEEDS = [write_zasm_bin(full_image()), reference_code_data(), reference_code_only()]


MUTATED = mutated(SEEDS, fix_zasm, max_extend=16)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_mutated_files_only_zjit_errors(data: bytes) -> None:
    try:
        img = read_zasm_bin(data)
    except ZjitError as e:
        assert e.offset is None or 0 <= e.offset <= len(data)
        return
    assert len(img.code) % 4 == 0 and img.code
