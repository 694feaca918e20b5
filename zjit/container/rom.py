"""ROM container: reader and writer (``formats.md`` 2, ``docs/formats.md``).

Layout: a 64-byte header (``rom_header_t``), a table of 32-byte section entries
(``rom_section_entry_t``) and 16-byte aligned payloads, all little-endian. CODE
holds a 16-byte code header then ZASM words. Sections mapped into guest memory
(CODE/CONST with ``mem_size > 0``, DATA, BSS) become :class:`SegmentDesc`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from zjit.encoding import ld_ext_count
from zjit.errors import ContainerError, VerifyError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import OPS, Family, sext

from ._reader import Reader, decode_name, ranges_overlap

MAGIC = b"ROM!"
VERSION_MAJOR = 1
VERSION_MINOR_MAX = 1
HEADER_SIZE = 64
ENTRY_SIZE = 32
CODE_HEADER_SIZE = 16
ALIGN = 16
FLAG_CHECKSUM = 1
CHECKSUM_AT = 0x1C

SEC_CODE = 0x01
SEC_CONST = 0x02
SEC_SYMBOL = 0x03
SEC_DEBUG = 0x04
SEC_DATA = 0x10
SEC_BSS = 0x11
SECTION_NAMES = {
    SEC_CODE: "CODE", SEC_CONST: "CONST", SEC_SYMBOL: "SYMBOL", SEC_DEBUG: "DEBUG",
    SEC_DATA: "DATA", SEC_BSS: "BSS",
}
_V11_TYPES = (SEC_DATA, SEC_BSS)
_SINGLE = (SEC_CODE, SEC_CONST, SEC_SYMBOL, SEC_DEBUG)

CONST_INT, CONST_FLOAT, CONST_STRING, CONST_BLOB = 1, 2, 3, 4
SYM_FUNCTION, SYM_DATA, SYM_LABEL = 0, 1, 2

_HEADER = struct.Struct("<4sHHIIIIII32s")
_ENTRY = struct.Struct("<IIIIII8s")
_LD_OPCODE = next(o.opcode for o in OPS if o.family is Family.LDI)


@dataclass(frozen=True)
class _Section:
    kind: int
    off: int
    size: int
    mem_address: int
    mem_size: int
    entry_at: int


def extension_words(code: bytes) -> bytearray:
    """One flag per word of ``code``: 1 for an LD extension word, 0 for an
    instruction start (a trailing LD cut short still counts as one instruction)."""
    opcodes = code[3 : len(code) - len(code) % 4 : 4]
    ext = bytearray(len(opcodes))
    i = opcodes.find(_LD_OPCODE)
    while i >= 0:
        n = ld_ext_count(sext(code[4 * i] | (code[4 * i + 1] & 0xF) << 8, 12))
        if n:
            ext[i + 1 : i + 1 + n] = b"\x01" * len(ext[i + 1 : i + 1 + n])
        i = opcodes.find(_LD_OPCODE, i + 1 + n)
    return ext


def instruction_starts(code: bytes) -> list[int]:
    """pcs of every instruction start in ``code``."""
    return [4 * i for i, flag in enumerate(extension_words(code)) if not flag]


# --------------------------------------------------------------------------- reader


def _read_header(data: bytes) -> tuple[int, int, int, int]:
    """Check the header; return (minor, entry_point, section_count, table_off)."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise ContainerError("BAD_MAGIC", "not a ROM (magic must be 'ROM!')", offset=0)
    if len(data) < HEADER_SIZE:
        raise ContainerError(
            "TRUNCATED", f"header needs {HEADER_SIZE} bytes, input has {len(data)}", offset=len(data)
        )
    _, major, minor, flags, entry, count, table_off, rom_size, checksum, reserved = _HEADER.unpack_from(data)
    if major != VERSION_MAJOR:
        raise ContainerError("BAD_VERSION", f"ROM version {major}.{minor}, major must be 1", offset=4)
    if minor > VERSION_MINOR_MAX:
        raise ContainerError("ROM_TOO_NEW", f"ROM version 1.{minor} is newer than 1.1", offset=6)
    if flags & ~FLAG_CHECKSUM:
        raise ContainerError("BAD_FLAGS", f"header flags {flags:#x}: only bit 0 is defined", offset=8)
    if rom_size != len(data):
        raise ContainerError("BAD_LENGTH", f"rom_size {rom_size} but the input has {len(data)} bytes", offset=0x18)
    if any(reserved):
        bad = next(i for i, b in enumerate(reserved) if b)
        raise ContainerError("BAD_RESERVED", "header reserved bytes must be 0", offset=0x20 + bad)
    if flags & FLAG_CHECKSUM:
        actual = zlib.crc32(data[:CHECKSUM_AT] + bytes(4) + data[CHECKSUM_AT + 4 :])
        if actual != checksum:
            raise ContainerError(
                "BAD_CHECKSUM", f"checksum {checksum:#010x}, CRC-32 of the file is {actual:#010x}",
                offset=CHECKSUM_AT,
            )
    elif checksum != 0:
        raise ContainerError("BAD_CHECKSUM", "checksum must be 0 when flag bit 0 is clear", offset=CHECKSUM_AT)
    if count == 0:
        raise ContainerError("BAD_DIRECTORY", "section_count must be at least 1", offset=0x10)
    if table_off < HEADER_SIZE or table_off + count * ENTRY_SIZE > rom_size:
        raise ContainerError(
            "BAD_DIRECTORY", f"section table ({count} entries at {table_off}) outside the file or over the header",
            offset=0x14,
        )
    return minor, entry, count, table_off


def _check_mem(kind: int, name: str, sec: _Section, eo: int) -> None:
    def bad(field_at: int, why: str) -> ContainerError:
        return ContainerError("BAD_SECTION", f"{name} section: {why}", offset=eo + field_at)

    if kind in (SEC_SYMBOL, SEC_DEBUG) or (kind in (SEC_CODE, SEC_CONST) and sec.mem_size == 0):
        if sec.mem_address != 0:
            raise bad(16, "mem_address must be 0 when the section is not mapped")
        if sec.mem_size != 0:
            raise bad(20, "mem_size must be 0 (the section is never mapped)")
        return
    if kind == SEC_CODE and sec.mem_size < sec.size - CODE_HEADER_SIZE:
        raise bad(20, "mem_size is smaller than the code words")
    if kind in (SEC_CONST, SEC_DATA) and sec.mem_size < sec.size:
        raise bad(20, "mem_size is smaller than file_size")
    if kind == SEC_BSS and sec.mem_size == 0:
        raise bad(20, "BSS mem_size must be > 0")


def _read_table(data: bytes, minor: int, count: int, table_off: int) -> list[_Section]:
    table_len = count * ENTRY_SIZE
    sections: list[_Section] = []
    seen: set[int] = set()
    for i in range(count):
        eo = table_off + i * ENTRY_SIZE
        kind, flags, off, size, mem_address, mem_size, reserved = _ENTRY.unpack_from(data, eo)
        if kind not in SECTION_NAMES:
            raise ContainerError("BAD_SECTION_TYPE", f"unknown section type {kind:#x}", offset=eo)
        name = SECTION_NAMES[kind]
        if kind in _V11_TYPES and minor < 1:
            raise ContainerError("BAD_SECTION_TYPE", f"{name} sections need ROM version 1.1", offset=eo)
        if flags != 0:
            raise ContainerError("BAD_FLAGS", f"{name} section: flags must be 0", offset=eo + 4)
        if any(reserved):
            bad = next(i for i, b in enumerate(reserved) if b)
            raise ContainerError("BAD_RESERVED", f"{name} section: reserved bytes must be 0", offset=eo + 24 + bad)
        if kind == SEC_BSS and size != 0:
            raise ContainerError("BAD_SECTION", "BSS section: file_size must be 0", offset=eo + 12)
        # [off, off + size) must lie within the file; for BSS (size 0) off == rom_size is valid
        if off > len(data) or size > len(data) - off:
            raise ContainerError(
                "BAD_RANGE", f"{name} section: payload [{off}, {off + size}) outside the file", offset=eo + 8
            )
        if off % ALIGN:
            raise ContainerError("BAD_ALIGN", f"{name} section: file_offset {off} not 16-byte aligned", offset=eo + 8)
        if size == 0 and kind != SEC_BSS:
            raise ContainerError("BAD_SECTION", f"{name} section: file_size must be non-zero", offset=eo + 12)
        if kind in _SINGLE and kind in seen:
            raise ContainerError("DUPLICATE_TAG", f"more than one {name} section", offset=eo)
        if ranges_overlap(off, size, 0, HEADER_SIZE) or ranges_overlap(off, size, table_off, table_len):
            raise ContainerError(
                "OVERLAP_PAYLOAD", f"{name} section overlaps the header or the section table", offset=eo + 8
            )
        for other in sections:
            if ranges_overlap(off, size, other.off, other.size):
                raise ContainerError(
                    "OVERLAP_PAYLOAD", f"{name} section overlaps an earlier section", offset=eo + 8
                )
        sec = _Section(kind, off, size, mem_address, mem_size, eo)
        _check_mem(kind, name, sec, eo)
        seen.add(kind)
        sections.append(sec)
    return sections


def _read_code(data: bytes, sec: _Section) -> tuple[bytes, bytearray]:
    if sec.size < CODE_HEADER_SIZE:
        raise ContainerError("BAD_SECTION", "CODE section is shorter than its 16-byte header", offset=sec.entry_at + 12)
    r = Reader(data, sec.off, sec.off + sec.size, "BAD_SECTION", "CODE")
    declared = r.u32()
    if r.u32() != 0:
        raise ContainerError("BAD_FLAGS", "CODE code_flags must be 0", offset=sec.off + 4)
    reserved = r.take(8)
    if any(reserved):
        bad = next(i for i, b in enumerate(reserved) if b)
        raise ContainerError("BAD_RESERVED", "CODE header reserved bytes must be 0", offset=sec.off + 8 + bad)
    code = r.take(r.remaining)
    if not code:
        raise VerifyError("EMPTY_CODE", "CODE holds no instruction words", offset=r.pos)
    if len(code) % 4:
        raise VerifyError("CODE_ALIGN", f"CODE words are {len(code)} bytes, not a multiple of 4",
                          offset=sec.off + CODE_HEADER_SIZE)
    ext = extension_words(code)
    count = len(ext) - ext.count(1)
    if declared != count:
        raise ContainerError(
            "BAD_COUNT", f"instruction_count {declared} but CODE decodes to {count} instructions",
            offset=sec.off,
        )
    return code, ext


def _read_const(data: bytes, sec: _Section) -> None:
    r = Reader(data, sec.off, sec.off + sec.size, "BAD_SECTION", "CONST")
    for _ in range(r.u32()):
        at = r.pos
        tag = r.u8()
        size = r.u32()
        if tag not in (CONST_INT, CONST_FLOAT, CONST_STRING, CONST_BLOB):
            raise ContainerError("BAD_SECTION", f"CONST: unknown constant tag {tag}", offset=at)
        if tag in (CONST_INT, CONST_FLOAT) and size != 8:
            raise ContainerError("BAD_SECTION", f"CONST: numeric constant of size {size} (must be 8)", offset=at + 1)
        payload = r.take(size)
        if tag == CONST_STRING:
            try:
                payload.decode("utf-8", "strict")
            except UnicodeDecodeError as exc:
                raise ContainerError("BAD_SECTION", "CONST: string is not valid UTF-8", offset=at + 5) from exc
    r.expect_end()


def _read_symbols(data: bytes, sec: _Section) -> tuple[dict[str, int], dict[str, int]]:
    """Return (function name -> address, function name -> offset of its address field)."""
    r = Reader(data, sec.off, sec.off + sec.size, "BAD_SECTION", "SYMBOL")
    funcs: dict[str, int] = {}
    where: dict[str, int] = {}
    for _ in range(r.u32()):
        at = r.pos
        name = decode_name(r.take(r.u16()), at + 2, "SYMBOL")
        addr_at = r.pos
        address = r.u32()
        kind = r.u8()
        if kind not in (SYM_FUNCTION, SYM_DATA, SYM_LABEL):
            raise ContainerError("BAD_SECTION", f"SYMBOL {name!r}: unknown kind {kind}", offset=r.pos - 1)
        if kind == SYM_FUNCTION:
            if name in funcs:
                raise ContainerError("BAD_NAME", f"SYMBOL: function {name!r} defined twice", offset=at + 2)
            funcs[name] = address
            where[name] = addr_at
    r.expect_end()
    return funcs, where


def _read_debug(data: bytes, sec: _Section, code_len: int, ext: bytearray) -> dict[int, DebugLine]:
    r = Reader(data, sec.off, sec.off + sec.size, "BAD_SECTION", "DEBUG")
    lines: dict[int, DebugLine] = {}
    for _ in range(r.u32()):
        at = r.pos
        pc = r.u32()
        line = r.u32()
        src_at = r.pos + 2
        source = decode_name(r.take(r.u16()), src_at, "DEBUG")
        if pc % 4 or pc >= code_len or ext[pc // 4]:
            raise ContainerError("BAD_SECTION", f"DEBUG: pc {pc:#x} is not an instruction start", offset=at)
        if pc in lines:
            raise ContainerError("BAD_SECTION", f"DEBUG: pc {pc:#x} has two records", offset=at)
        lines[pc] = DebugLine(source, line)
    r.expect_end()
    return lines


def read_rom(data: bytes, name: str = "module") -> ModuleImage:
    """Parse a ROM file into a ModuleImage (ContainerError on any format rule)."""
    data = bytes(data)
    minor, entry, count, table_off = _read_header(data)
    sections = _read_table(data, minor, count, table_off)
    code_sec = next((s for s in sections if s.kind == SEC_CODE), None)
    if code_sec is None:
        raise ContainerError("MISSING_CODE", "no CODE section", offset=table_off)
    code, ext = _read_code(data, code_sec)

    segments: list[SegmentDesc] = []
    exports: dict[str, int] = {}
    debug: dict[int, DebugLine] = {}
    n_data = n_bss = 0
    for sec in sections:
        if sec.kind == SEC_CODE and sec.mem_size:
            segments.append(SegmentDesc("code", sec.mem_address, sec.mem_size, "rx", code))
        elif sec.kind == SEC_CONST:
            _read_const(data, sec)
            if sec.mem_size:
                payload = data[sec.off : sec.off + sec.size]
                segments.append(SegmentDesc("const", sec.mem_address, sec.mem_size, "r", payload))
        elif sec.kind == SEC_SYMBOL:
            exports, where = _read_symbols(data, sec)
            if "main" in exports and exports["main"] != entry:
                raise ContainerError(
                    "ENTRY_MISMATCH", f"function main at {exports['main']:#x} but entry_point is {entry:#x}",
                    offset=where["main"],
                )
        elif sec.kind == SEC_DEBUG:
            debug = _read_debug(data, sec, len(code), ext)
        elif sec.kind == SEC_DATA:
            payload = data[sec.off : sec.off + sec.size]
            segments.append(SegmentDesc(f"data.{n_data}", sec.mem_address, sec.mem_size, "rw", payload))
            n_data += 1
        elif sec.kind == SEC_BSS:
            segments.append(SegmentDesc(f"bss.{n_bss}", sec.mem_address, sec.mem_size, "rw", None))
            n_bss += 1
    return ModuleImage(
        code=code,
        entry_pc=entry,
        exports=exports,
        segments=tuple(segments),
        debug=debug,
        source_format="rom",
        code_offset=code_sec.off + CODE_HEADER_SIZE,
        name=name,
    )


# --------------------------------------------------------------------------- writer


def _const_parses(payload: bytes) -> bool:
    sec = _Section(SEC_CONST, 0, len(payload), 0, 0, 0)
    try:
        _read_const(payload, sec)
    except ContainerError:
        return False
    return bool(payload)


def _u32(value: int, what: str, segment: str | None = None) -> int:
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ContainerError("BAD_SECTION", f"{what} {value} does not fit in 32 bits",
                             segments=(segment,) if segment else ())
    return value


def _sections_for(image: ModuleImage) -> tuple[list[tuple[int, bytes, int, int]], bool]:
    """(type, payload, mem_address, mem_size) per section, and whether 1.1 is needed."""
    code = bytes(image.code)
    if not code or len(code) % 4:
        raise VerifyError("CODE_ALIGN", "CODE must be a non-empty multiple of 4 bytes")
    ext = extension_words(code)
    code_hdr = struct.pack("<II8s", len(ext) - ext.count(1), 0, bytes(8))
    code_map = (0, 0)
    const: list[tuple[int, bytes, int, int]] = []
    rw: list[tuple[int, bytes, int, int]] = []
    for seg in image.segments:
        name = seg.name
        if seg.perms == "rx" and seg.init == code and seg.size >= len(code) and code_map == (0, 0):
            code_map = (_u32(seg.base, "base", name), _u32(seg.size, "size", name))
        elif seg.perms == "r" and seg.init and _const_parses(seg.init) and not const and seg.size >= len(seg.init):
            const.append((SEC_CONST, seg.init, _u32(seg.base, "base", name), _u32(seg.size, "size", name)))
        elif seg.perms == "rw" and seg.init:
            if len(seg.init) > seg.size:
                raise ContainerError("BAD_SECTION", f"segment {name!r}: init longer than size", segments=(name,))
            rw.append((SEC_DATA, seg.init, _u32(seg.base, "base", name), _u32(seg.size, "size", name)))
        elif seg.perms == "rw":
            rw.append((SEC_BSS, b"", _u32(seg.base, "base", name), _u32(seg.size, "size", name)))
        else:
            raise ContainerError(
                "BAD_SECTION_TYPE",
                f"segment {name!r} ({seg.perms}) has no ROM section type (only the code mapping, "
                "one CONST table, DATA and BSS)",
                segments=(name,),
            )
    out: list[tuple[int, bytes, int, int]] = [(SEC_CODE, code_hdr + code, *code_map), *const, *rw]
    if image.exports:
        sym = bytearray(struct.pack("<I", len(image.exports)))
        for fname in sorted(image.exports):
            raw = fname.encode("utf-8")
            if not raw or len(raw) > 0xFFFF:
                raise ContainerError("BAD_NAME", f"export name {fname!r} is empty or too long")
            sym += struct.pack("<H", len(raw)) + raw + struct.pack("<IB", _u32(image.exports[fname], "pc"), 0)
        out.append((SEC_SYMBOL, bytes(sym), 0, 0))
    if image.debug:
        dbg = bytearray(struct.pack("<I", len(image.debug)))
        for pc in sorted(image.debug):
            src = image.debug[pc].source.encode("utf-8")
            if not src or len(src) > 0xFFFF:
                raise ContainerError("BAD_NAME", f"debug source name {image.debug[pc].source!r} is empty or too long")
            dbg += struct.pack("<IIH", _u32(pc, "pc"), _u32(image.debug[pc].line, "line"), len(src)) + src
        out.append((SEC_DEBUG, bytes(dbg), 0, 0))
    return out, bool(rw)


def write_rom(image: ModuleImage) -> bytes:
    """Serialise a ModuleImage as a ROM (deterministic; version 1.0 unless DATA or
    BSS sections are needed; checksum flag set with the CRC-32 filled in).

    Imports and memory requirements have no place in a ROM and are not written.
    """
    if "main" in image.exports and image.exports["main"] != image.entry_pc:
        raise ContainerError("ENTRY_MISMATCH", "the entry differs from the exported main")
    entry = _u32(image.entry_pc, "entry pc")
    sections, needs_v11 = _sections_for(image)
    table_off = HEADER_SIZE
    pos = table_off + ENTRY_SIZE * len(sections)
    body = bytearray()
    table = bytearray()
    code_off = 0
    for kind, payload, mem_address, mem_size in sections:
        if kind == SEC_BSS:
            table += _ENTRY.pack(kind, 0, code_off, 0, mem_address, mem_size, bytes(8))
            continue
        pad = -pos % ALIGN
        body += bytes(pad)
        pos += pad
        if kind == SEC_CODE:
            code_off = pos
        table += _ENTRY.pack(kind, 0, pos, len(payload), mem_address, mem_size, bytes(8))
        body += payload
        pos += len(payload)
    rom_size = table_off + len(table) + len(body)
    header = _HEADER.pack(
        MAGIC, VERSION_MAJOR, 1 if needs_v11 else 0, FLAG_CHECKSUM, entry, len(sections), table_off,
        rom_size, 0, bytes(32),
    )
    blob = bytearray(header + table + body)
    struct.pack_into("<I", blob, CHECKSUM_AT, zlib.crc32(blob))
    return bytes(blob)
