"""ROM reader and writer: hand-built files, every error code, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zjit.container.rom import instruction_starts, read_rom, write_rom
from zjit.encoding import ld_words, pack, words_to_bytes
from zjit.errors import ZjitError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import BY_MNEMONIC, HL
from zjit.testing import fix_rom, mutated

DATA_DIR = Path(__file__).parent / "data"
RET = pack(BY_MNEMONIC["RET"].opcode)
# LD HL,5 ; LD HL,0x12345678 (2 words) ; RET  -> 3 instructions, 4 words
CODE = words_to_bytes([*ld_words(HL, 5), *ld_words(HL, 0x12345678), RET])


def code_payload(code: bytes = CODE, count: int = 3) -> bytes:
    return struct.pack("<II8s", count, 0, bytes(8)) + code


def symbols(*syms: tuple[str, int, int]) -> bytes:
    out = struct.pack("<I", len(syms))
    for name, addr, kind in syms:
        raw = name.encode()
        out += struct.pack("<H", len(raw)) + raw + struct.pack("<IB", addr, kind)
    return out


def debug_records(*recs: tuple[int, int, str]) -> bytes:
    out = struct.pack("<I", len(recs))
    for pc, line, src in recs:
        raw = src.encode()
        out += struct.pack("<IIH", pc, line, len(raw)) + raw
    return out


def consts(*items: tuple[int, bytes]) -> bytes:
    out = struct.pack("<I", len(items))
    for tag, raw in items:
        out += struct.pack("<BI", tag, len(raw)) + raw
    return out


Sec = tuple[int, bytes, int, int]  # type, payload, mem_address, mem_size


def build(
    sections: list[Sec],
    *,
    minor: int = 0,
    entry: int = 0,
    checksum: bool = True,
    bss_offset: int | None = None,
) -> bytearray:
    """Lay out a ROM byte by byte: header, table at 64, payloads 16-aligned."""
    table_off = 64
    pos = table_off + 32 * len(sections)
    table = b""
    body = b""
    first_payload = None
    for kind, payload, addr, size in sections:
        if kind == 0x11:
            off = bss_offset if bss_offset is not None else (first_payload or 0)
            table += struct.pack("<IIIIII8s", kind, 0, off, 0, addr, size, bytes(8))
            continue
        pad = -pos % 16
        body += bytes(pad)
        pos += pad
        if first_payload is None:
            first_payload = pos
        table += struct.pack("<IIIIII8s", kind, 0, pos, len(payload), addr, size, bytes(8))
        body += payload
        pos += len(payload)
    total = table_off + len(table) + len(body)
    header = struct.pack("<4sHHIIIIII32s", b"ROM!", 1, minor, 1 if checksum else 0, entry,
                         len(sections), table_off, total, 0, bytes(32))
    data = bytearray(header + table + body)
    if checksum:
        struct.pack_into("<I", data, 0x1C, zlib.crc32(data))
    return data


def resum(data: bytearray) -> bytearray:
    """Recompute the checksum after a deliberate corruption."""
    struct.pack_into("<I", data, 0x1C, 0)
    struct.pack_into("<I", data, 0x1C, zlib.crc32(data))
    return data


def err(data: bytes | bytearray) -> ZjitError:
    with pytest.raises(ZjitError) as info:
        read_rom(bytes(data))
    return info.value


def minimal() -> bytearray:
    return build([(1, code_payload(), 0, 0)])


# --------------------------------------------------------------------------- good files


def test_instruction_starts() -> None:
    assert instruction_starts(CODE) == [0, 4, 12]


def test_minimal_hand_built_rom() -> None:
    img = read_rom(bytes(minimal()))
    assert img.code == CODE and img.entry_pc == 0 and img.segments == ()
    assert img.code_offset == 64 + 32 + 16
    assert img.source_format == "rom"


def test_rom_without_checksum_flag() -> None:
    assert read_rom(bytes(build([(1, code_payload(), 0, 0)], checksum=False))).code == CODE


def test_full_hand_built_rom() -> None:
    data = build(
        [
            (1, code_payload(), 0x100, 0x40),
            (2, consts((1, bytes(8)), (3, "hé".encode()), (4, b"\x00\x01")), 0x400, 0x40),
            (3, symbols(("main", 12, 0), ("helper", 4, 0), ("buf", 0x2000, 1), ("lbl", 0, 2)), 0, 0),
            (4, debug_records((0, 3, "m.s"), (12, 5, "m.s")), 0, 0),
            (0x10, b"abc", 0x2000, 0x10),
            (0x11, b"", 0x3000, 0x100),
            (0x10, b"z", 0x4000, 1),
        ],
        minor=1,
        entry=12,
    )
    img = read_rom(bytes(data))
    assert img.entry_pc == 12
    assert img.exports == {"main": 12, "helper": 4}
    assert img.debug == {0: DebugLine("m.s", 3), 12: DebugLine("m.s", 5)}
    names = [(s.name, s.base, s.size, s.perms) for s in img.segments]
    assert names == [
        ("code", 0x100, 0x40, "rx"), ("const", 0x400, 0x40, "r"),
        ("data.0", 0x2000, 0x10, "rw"), ("bss.0", 0x3000, 0x100, "rw"), ("data.1", 0x4000, 1, "rw"),
    ]
    assert img.segments[0].init == CODE
    assert img.segments[3].init is None


def test_checked_in_rom_sample() -> None:
    data = (DATA_DIR / "sample.rom").read_bytes()
    assert data == bytes(build([(1, code_payload(), 0, 0), (3, symbols(("main", 0, 0)), 0, 0)]))
    assert read_rom(data).exports == {"main": 0}


def test_v11_without_new_sections_is_accepted() -> None:
    assert read_rom(bytes(build([(1, code_payload(), 0, 0)], minor=1))).code == CODE


def test_spec_example_header_fields() -> None:
    data = minimal()
    assert data[:8] == bytes.fromhex("524F4D2101000000")
    assert struct.unpack_from("<III", data, 0x10) == (1, 0x40, len(data))


# --------------------------------------------------------------------------- round trips


def full_image() -> ModuleImage:
    return ModuleImage(
        code=CODE,
        entry_pc=12,
        exports={"main": 12, "f": 4},
        segments=(
            SegmentDesc("code", 0x100, 0x20, "rx", CODE),
            SegmentDesc("const", 0x400, 0x40, "r", consts((4, b"blob"))),
            SegmentDesc("data.0", 0x1000, 16, "rw", b"hello"),
            SegmentDesc("bss.0", 0x2000, 64, "rw", None),
        ),
        debug={0: DebugLine("x.s", 1), 12: DebugLine("y.s", 2)},
        source_format="rom",
        code_offset=64 + 32 * 6 + 16,
    )


def test_round_trip_full() -> None:
    img = full_image()
    blob = write_rom(img)
    assert struct.unpack_from("<HH", blob, 4) == (1, 1)
    assert read_rom(blob) == img
    assert write_rom(read_rom(blob)) == blob


def test_writer_emits_v10_without_data() -> None:
    img = ModuleImage(code=CODE, exports={"main": 0}, source_format="rom", code_offset=64 + 64 + 16)
    blob = write_rom(img)
    assert struct.unpack_from("<HHI", blob, 4) == (1, 0, 1)
    assert read_rom(blob) == img


def test_writer_output_matches_hand_built() -> None:
    img = ModuleImage(code=CODE, exports={"main": 0})
    assert write_rom(img) == bytes(build([(1, code_payload(), 0, 0), (3, symbols(("main", 0, 0)), 0, 0)]))


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (ModuleImage(code=CODE, exports={"main": 4}), "ENTRY_MISMATCH"),
        (ModuleImage(code=b"\0\0"), "CODE_ALIGN"),
        (ModuleImage(code=CODE, segments=(SegmentDesc("ro", 0, 4, "r", b"abcd"),)), "BAD_SECTION_TYPE"),
        (ModuleImage(code=CODE, segments=(SegmentDesc("d", 0, 2, "rw", b"abcd"),)), "BAD_SECTION"),
        (ModuleImage(code=CODE, exports={"": 0}), "BAD_NAME"),
        (ModuleImage(code=CODE, entry_pc=-4), "BAD_SECTION"),
    ],
)
def test_writer_rejects_unrepresentable(image: ModuleImage, code: str) -> None:
    with pytest.raises(ZjitError) as info:
        write_rom(image)
    assert info.value.code == code


# --------------------------------------------------------------------------- errors


def test_bad_magic_and_truncated() -> None:
    assert (err(b"ROM?" + bytes(60)).code, err(b"").offset) == ("BAD_MAGIC", 0)
    e = err(b"ROM!\x01\x00")
    assert (e.code, e.offset) == ("TRUNCATED", 6)


@pytest.mark.parametrize(
    ("fmt", "at", "value", "code", "offset"),
    [
        ("<H", 4, 2, "BAD_VERSION", 4),
        ("<H", 4, 0, "BAD_VERSION", 4),
        ("<H", 6, 2, "ROM_TOO_NEW", 6),
        ("<I", 8, 3, "BAD_FLAGS", 8),
        ("<I", 0x18, 5, "BAD_LENGTH", 0x18),
        ("<B", 0x2F, 1, "BAD_RESERVED", 0x2F),
        ("<I", 0x10, 0, "BAD_DIRECTORY", 0x10),
        ("<I", 0x10, 9, "BAD_DIRECTORY", 0x14),
        ("<I", 0x14, 32, "BAD_DIRECTORY", 0x14),
        ("<I", 0x14, 0xFFFF_FFF0, "BAD_DIRECTORY", 0x14),
        ("<I", 64, 5, "BAD_SECTION_TYPE", 64),
        ("<I", 64, 2, "MISSING_CODE", 64),
        ("<I", 64 + 4, 1, "BAD_FLAGS", 68),
        ("<B", 64 + 31, 1, "BAD_RESERVED", 95),
        ("<I", 64 + 8, 0x1000, "BAD_RANGE", 72),
        ("<I", 64 + 12, 0x1000, "BAD_RANGE", 72),
        ("<I", 64 + 8, 88, "BAD_ALIGN", 72),
        ("<I", 64 + 8, 48, "OVERLAP_PAYLOAD", 72),     # header
        ("<I", 64 + 8, 64, "OVERLAP_PAYLOAD", 72),     # table
        ("<I", 64 + 12, 0, "BAD_SECTION", 76),         # size 0
        ("<I", 64 + 12, 8, "BAD_SECTION", 76),         # shorter than the code header
        ("<I", 64 + 12, 16, "EMPTY_CODE", 112),
        ("<I", 64 + 12, 18, "CODE_ALIGN", 112),
        ("<I", 64 + 16, 0x100, "BAD_SECTION", 80),     # mem_address without mem_size
        ("<I", 64 + 20, 8, "BAD_SECTION", 84),         # mem_size below the words
        ("<I", 96, 2, "BAD_COUNT", 96),
        ("<I", 96 + 4, 1, "BAD_FLAGS", 100),
        ("<B", 96 + 12, 1, "BAD_RESERVED", 108),
    ],
)
def test_header_table_code_errors(fmt: str, at: int, value: int, code: str, offset: int) -> None:
    data = minimal()
    struct.pack_into(fmt, data, at, value)
    e = err(resum(data))
    assert (e.code, e.offset) == (code, offset)


def test_bad_checksum() -> None:
    data = minimal()
    data[-1] ^= 0xFF
    e = err(data)
    assert (e.code, e.offset) == ("BAD_CHECKSUM", 0x1C)


def test_checksum_without_flag_must_be_zero() -> None:
    data = build([(1, code_payload(), 0, 0)], checksum=False)
    struct.pack_into("<I", data, 0x1C, 1)
    e = err(data)
    assert (e.code, e.offset) == ("BAD_CHECKSUM", 0x1C)


SYM_AT = 64 + 64 + 32  # header, 2 entries, CODE payload (16 + 16 bytes)


def two(payload: bytes, kind: int = 3, minor: int = 0, mem: tuple[int, int] = (0, 0), entry: int = 0) -> bytearray:
    return build([(1, code_payload(), 0, 0), (kind, payload, *mem)], minor=minor, entry=entry)


@pytest.mark.parametrize(
    ("data", "code", "offset"),
    [
        (two(b"", kind=0x10), "BAD_SECTION_TYPE", 96),                                    # DATA in 1.0
        (two(b"", kind=0x11, mem=(0x1000, 4)), "BAD_SECTION_TYPE", 96),                   # BSS in 1.0
        (two(symbols(("main", 4, 0))), "ENTRY_MISMATCH", SYM_AT + 4 + 2 + 4),
        (two(symbols(("f", 0, 0), ("f", 4, 0))), "BAD_NAME", SYM_AT + 4 + 2 + 1 + 5 + 2),
        (two(symbols(("", 0, 0))), "BAD_NAME", SYM_AT + 6),
        (two(struct.pack("<IH", 1, 1) + b"\xff" + struct.pack("<IB", 0, 0)), "BAD_NAME", SYM_AT + 6),
        (two(symbols(("f", 0, 7))), "BAD_SECTION", SYM_AT + 4 + 2 + 1 + 4),
        (two(symbols(("f", 0, 0)) + b"\0"), "BAD_SECTION", SYM_AT + 4 + 2 + 1 + 5),
        (two(symbols(("f", 0, 0))[:-2]), "BAD_SECTION", SYM_AT + 4 + 2 + 1),
        (two(symbols(("f", 0, 0)), mem=(0, 4)), "BAD_SECTION", 96 + 20),
        (two(symbols(("f", 0, 0)), mem=(4, 0)), "BAD_SECTION", 96 + 16),
        (two(debug_records((8, 1, "a")), kind=4), "BAD_SECTION", SYM_AT + 4),              # ext word
        (two(debug_records((0, 1, "a"), (0, 2, "a")), kind=4), "BAD_SECTION", SYM_AT + 4 + 11),
        (two(debug_records((0, 1, "")), kind=4), "BAD_NAME", SYM_AT + 4 + 10),
        (two(debug_records((0, 1, "ab"))[:-1], kind=4), "BAD_SECTION", SYM_AT + 4 + 10),
        (two(consts((9, b"")), kind=2), "BAD_SECTION", SYM_AT + 4),
        (two(consts((1, b"1234")), kind=2), "BAD_SECTION", SYM_AT + 5),
        (two(consts((3, b"\xff")), kind=2), "BAD_SECTION", SYM_AT + 9),
        (two(consts((4, b"ab")) + b"\0", kind=2), "BAD_SECTION", SYM_AT + 11),
        (two(consts((4, b"ab")), kind=2, mem=(0x100, 4)), "BAD_SECTION", 96 + 20),
        (two(b"abc", kind=0x10, minor=1, mem=(0x100, 2)), "BAD_SECTION", 96 + 20),
        (two(b"", kind=0x11, minor=1, mem=(0x100, 0)), "BAD_SECTION", 96 + 20),
        (build([(1, code_payload(), 0, 0), (1, code_payload(), 0, 0)]), "DUPLICATE_TAG", 96),
        (build([(1, code_payload(), 0, 0), (3, symbols(), 0, 0), (3, symbols(), 0, 0)]), "DUPLICATE_TAG", 128),
    ],
)
def test_section_errors(data: bytearray, code: str, offset: int) -> None:
    e = err(data)
    assert (e.code, e.offset) == (code, offset)


def test_bss_file_size_and_offset_rules() -> None:
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1)
    struct.pack_into("<I", data, 96 + 12, 4)
    assert (err(resum(data)).code, err(data).offset) == ("BAD_SECTION", 108)
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1, bss_offset=0x1000)
    assert (err(data).code, err(data).offset) == ("BAD_RANGE", 104)
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1, bss_offset=8)
    assert (err(data).code, err(data).offset) == ("BAD_ALIGN", 104)
    # zero-length BSS may point anywhere aligned inside the file, even at the header
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1, bss_offset=0)
    assert read_rom(bytes(data)).segments == (SegmentDesc("bss.0", 0x1000, 4, "rw", None),)


def test_bss_at_rom_size_is_an_empty_range_inside_the_file() -> None:
    # ROM 1.1 (formats.md): file_offset <= rom_size, so the empty range just past the
    # last payload is valid; one aligned step further is outside the file.
    size = len(build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1))
    assert size % 16 == 0
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1, bss_offset=size)
    assert read_rom(bytes(data)).segments == (SegmentDesc("bss.0", 0x1000, 4, "rw", None),)
    data = build([(1, code_payload(), 0, 0), (0x11, b"", 0x1000, 4)], minor=1, bss_offset=size + 16)
    assert (err(data).code, err(data).offset) == ("BAD_RANGE", 104)


def test_payload_overlap_between_sections() -> None:
    data = build([(1, code_payload(), 0, 0), (3, symbols(("f", 0, 0)), 0, 0)])
    struct.pack_into("<I", data, 96 + 8, 128)  # SYMBOL starts on the CODE payload
    e = err(resum(data))
    assert (e.code, e.offset) == ("OVERLAP_PAYLOAD", 104)


def test_truncated_ld_counts_as_one_instruction() -> None:
    code = words_to_bytes([ld_words(HL, 0x12345678)[0]])
    assert read_rom(bytes(build([(1, code_payload(code, 1), 0, 0)]))).code == code


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_zjit_errors(data: bytes) -> None:
    with contextlib.suppress(ZjitError):
        read_rom(b"ROM!" + data)


SEEDS = [write_rom(full_image()), bytes(minimal())]


MUTATED = mutated(SEEDS, fix_rom, max_extend=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_mutated_files_only_zjit_errors(data: bytes) -> None:
    try:
        img = read_rom(data)
    except ZjitError as e:
        assert e.offset is None or 0 <= e.offset <= len(data)
        return
    assert img.code and len(img.code) % 4 == 0
