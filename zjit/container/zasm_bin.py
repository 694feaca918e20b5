"""`.zasm.bin` v2: reader and writer (``formats.md`` 1, ``docs/formats.md``).

The reader checks every container rule and turns the file into a
:class:`~zjit.image.ModuleImage`; it does not verify the instructions (that is
:func:`zjit.verifier.verify`), apart from the container-level CODE rules
(present once, non-empty, a multiple of 4 bytes).
"""

from __future__ import annotations

import struct

from zjit.errors import ContainerError, VerifyError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import PRIM_MASK_ALL

from ._reader import Reader, decode_name, ranges_overlap, u32_at

MAGIC = b"ZASB"
VERSION = 2
HEADER_SIZE = 40
ENTRY_SIZE = 20
MEM_MIN_BYTES = 65536
"""Smallest ``min_bytes`` a MEM section may declare (one page)."""

TAG_CODE = b"CODE"
TAG_EXPT = b"EXPT"
TAG_IMPT = b"IMPT"
TAG_MEM = b"MEM "
TAG_DATA = b"DATA"
TAG_DEBUG = b"ZDBG"
"""zjit's private debug-line section (layout in ``docs/formats.md``)."""

_HEADER = struct.Struct("<4sHHIIIIIIII")
_ENTRY = struct.Struct("<4sIIII")


def _tag_text(tag: bytes) -> str:
    return tag.decode("latin-1").encode("unicode_escape").decode("ascii")


# --------------------------------------------------------------------------- reader


def _read_header(data: bytes) -> tuple[int, int, int]:
    """Check the header; return (dir_off, dir_count, entry_pc_words)."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise ContainerError("BAD_MAGIC", "not a .zasm.bin (magic must be 'ZASB')", offset=0)
    if len(data) < HEADER_SIZE:
        raise ContainerError(
            "TRUNCATED", f"header needs {HEADER_SIZE} bytes, input has {len(data)}", offset=len(data)
        )
    (_, version, flags, file_len, dir_off, dir_count, entry_words, _abi_id, _abi_ver,
     res0, res1) = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise ContainerError("BAD_VERSION", f"version {version}, only 2 is supported", offset=4)
    if flags != 0:
        raise ContainerError("BAD_FLAGS", f"header flags {flags:#x} must be 0", offset=6)
    if file_len != len(data):
        raise ContainerError(
            "BAD_LENGTH", f"file_len {file_len} but the input has {len(data)} bytes", offset=8
        )
    if res0 != 0:
        raise ContainerError("BAD_RESERVED", "reserved0 must be 0", offset=32)
    if res1 != 0:
        raise ContainerError("BAD_RESERVED", "reserved1 must be 0", offset=36)
    if dir_off < HEADER_SIZE:
        raise ContainerError("BAD_DIRECTORY", f"directory at {dir_off} overlaps the header", offset=12)
    if dir_off + dir_count * ENTRY_SIZE > file_len:
        raise ContainerError(
            "BAD_DIRECTORY",
            f"directory of {dir_count} entries at {dir_off} runs past the end of the file",
            offset=16 if dir_off <= file_len else 12,
        )
    return dir_off, dir_count, entry_words


def _read_directory(data: bytes, dir_off: int, dir_count: int) -> dict[bytes, tuple[int, int, int]]:
    """Check every directory entry; return tag -> (payload offset, length, entry offset)."""
    dir_len = dir_count * ENTRY_SIZE
    sections: dict[bytes, tuple[int, int, int]] = {}
    placed: list[tuple[int, int]] = []
    for i in range(dir_count):
        eo = dir_off + i * ENTRY_SIZE
        tag, off, length, flags, reserved = _ENTRY.unpack_from(data, eo)
        name = _tag_text(tag)
        if flags != 0:
            raise ContainerError("BAD_FLAGS", f"section {name!r}: flags must be 0", offset=eo + 12)
        if reserved != 0:
            raise ContainerError("BAD_RESERVED", f"section {name!r}: reserved must be 0", offset=eo + 16)
        if off > len(data) or length > len(data) - off:
            raise ContainerError(
                "BAD_RANGE", f"section {name!r}: payload [{off}, {off + length}) outside the file",
                offset=eo + 4,
            )
        if tag in sections:
            raise ContainerError("DUPLICATE_TAG", f"section {name!r} appears twice", offset=eo)
        if ranges_overlap(off, length, 0, HEADER_SIZE) or ranges_overlap(off, length, dir_off, dir_len):
            raise ContainerError(
                "OVERLAP_PAYLOAD", f"section {name!r} overlaps the header or the directory", offset=eo + 4
            )
        for other_off, other_len in placed:
            if ranges_overlap(off, length, other_off, other_len):
                raise ContainerError(
                    "OVERLAP_PAYLOAD", f"section {name!r} overlaps an earlier section", offset=eo + 4
                )
        placed.append((off, length))
        sections[tag] = (off, length, eo)
    return sections


def _read_exports(data: bytes, off: int, length: int) -> dict[str, int]:
    r = Reader(data, off, off + length, "BAD_SECTION", "EXPT")
    count = r.u32()
    exports: dict[str, int] = {}
    for _ in range(count):
        at = r.pos
        name_len = r.u16()
        kind = r.u8()
        if kind != 0:
            raise ContainerError("BAD_SECTION", f"EXPT: export kind {kind} (only 0 = function)", offset=at + 2)
        if r.u8() != 0:
            raise ContainerError("BAD_RESERVED", "EXPT: entry reserved byte must be 0", offset=at + 3)
        pc_words = r.u32()
        name = decode_name(r.take(name_len), at + 8, "EXPT")
        if name in exports:
            raise ContainerError("BAD_NAME", f"EXPT: export {name!r} appears twice", offset=at + 8)
        r.zero_pad(4, off)
        exports[name] = pc_words * 4
    r.expect_end()
    return exports


def _read_imports(data: bytes, off: int, length: int) -> int:
    if length != 8:
        raise ContainerError("BAD_IMPORTS", f"IMPT payload is {length} bytes, must be 8", offset=off)
    mask, reserved = u32_at(data, off), u32_at(data, off + 4)
    if mask & ~PRIM_MASK_ALL:
        raise ContainerError("BAD_IMPORTS", f"IMPT mask {mask:#x} has bits above 5", offset=off)
    if reserved != 0:
        raise ContainerError("BAD_IMPORTS", "IMPT reserved word must be 0", offset=off + 4)
    return mask


def _read_mem(data: bytes, off: int, length: int) -> tuple[int, int]:
    if length != 8:
        raise ContainerError("BAD_MEM", f"MEM payload is {length} bytes, must be 8", offset=off)
    lo, hi = u32_at(data, off), u32_at(data, off + 4)
    if lo < MEM_MIN_BYTES:
        raise ContainerError("BAD_MEM", f"MEM min_bytes {lo} is below {MEM_MIN_BYTES}", offset=off)
    if hi != 0 and hi < lo:
        raise ContainerError("BAD_MEM", f"MEM max_bytes {hi} is below min_bytes {lo}", offset=off + 4)
    return lo, hi


def _read_data(data: bytes, off: int, length: int) -> tuple[SegmentDesc, ...]:
    r = Reader(data, off, off + length, "BAD_DATA", "DATA")
    count = r.u32()
    segments: list[SegmentDesc] = []
    for _ in range(count):
        at = r.pos
        dst = r.u32()
        size = r.u32()
        init = r.take(size)
        r.zero_pad(4, off)
        if size == 0:
            continue  # allowed, no effect
        for seg in segments:
            if ranges_overlap(dst, size, seg.base, seg.size):
                raise ContainerError(
                    "BAD_DATA",
                    f"DATA segment at {dst:#x} (+{size}) overlaps {seg.name} at {seg.base:#x}",
                    offset=at,
                    segments=(seg.name, f"data.{len(segments)}"),
                )
        segments.append(SegmentDesc(f"data.{len(segments)}", dst, size, "rw", init))
    r.expect_end()
    return tuple(segments)


def _read_debug(data: bytes, off: int, length: int, code_len: int) -> dict[int, DebugLine]:
    r = Reader(data, off, off + length, "BAD_SECTION", "ZDBG")
    nsources = r.u32()
    sources: list[str] = []
    for _ in range(nsources):
        at = r.pos
        sources.append(decode_name(r.take(r.u16()), at + 2, "ZDBG"))
        r.zero_pad(4, off)
    count = r.u32()
    lines: dict[int, DebugLine] = {}
    last = -1
    for _ in range(count):
        at = r.pos
        pc, line, src = r.u32(), r.u32(), r.u32()
        if pc <= last or pc % 4 or pc >= code_len:
            raise ContainerError(
                "BAD_SECTION", f"ZDBG: pc {pc:#x} out of order or outside CODE", offset=at
            )
        if src >= len(sources):
            raise ContainerError("BAD_SECTION", f"ZDBG: source index {src} out of range", offset=at + 8)
        lines[pc] = DebugLine(sources[src], line)
        last = pc
    r.expect_end()
    return lines


def read_zasm_bin(data: bytes, name: str = "module") -> ModuleImage:
    """Parse a ``.zasm.bin`` v2 file into a ModuleImage (ContainerError on any
    container rule; VerifyError EMPTY_CODE/CODE_ALIGN for a malformed CODE size)."""
    data = bytes(data)
    dir_off, dir_count, entry_words = _read_header(data)
    sections = _read_directory(data, dir_off, dir_count)
    if TAG_CODE not in sections:
        raise ContainerError("MISSING_CODE", "no CODE section", offset=dir_off)
    code_off, code_len, _ = sections[TAG_CODE]
    if code_len == 0:
        raise VerifyError("EMPTY_CODE", "CODE section is empty", offset=code_off)
    if code_len % 4:
        raise VerifyError("CODE_ALIGN", f"CODE is {code_len} bytes, not a multiple of 4", offset=code_off)
    code = data[code_off : code_off + code_len]

    exports: dict[str, int] = {}
    if TAG_EXPT in sections:
        exports = _read_exports(data, *sections[TAG_EXPT][:2])
    imports = _read_imports(data, *sections[TAG_IMPT][:2]) if TAG_IMPT in sections else None
    mem_min: int | None = None
    mem_max: int | None = None
    if TAG_MEM in sections:
        mem_min, mem_max = _read_mem(data, *sections[TAG_MEM][:2])
    segments = _read_data(data, *sections[TAG_DATA][:2]) if TAG_DATA in sections else ()
    debug = _read_debug(data, *sections[TAG_DEBUG][:2], code_len) if TAG_DEBUG in sections else {}

    entry = entry_words * 4
    if "main" in exports and exports["main"] != entry:
        raise ContainerError(
            "ENTRY_MISMATCH",
            f"entry_pc_words {entry_words} differs from the exported main ({exports['main'] // 4})",
            offset=20,
        )
    return ModuleImage(
        code=code,
        entry_pc=entry,
        exports=exports,
        imports=imports,
        mem_min=mem_min,
        mem_max=mem_max,
        segments=segments,
        debug=debug,
        source_format="zasm",
        code_offset=code_off,
        name=name,
    )


# --------------------------------------------------------------------------- writer


def _pad4(buf: bytearray) -> None:
    buf += bytes(-len(buf) % 4)


def _export_payload(exports: dict[str, int]) -> bytes:
    out = bytearray(struct.pack("<I", len(exports)))
    for name in sorted(exports):
        pc = exports[name]
        if pc < 0 or pc % 4 or pc // 4 > 0xFFFF_FFFF:
            raise VerifyError("BAD_EXPORT", f"export {name!r} pc {pc} is not a word offset", pc=pc)
        raw = name.encode("utf-8")
        if not raw or len(raw) > 0xFFFF:
            raise ContainerError("BAD_NAME", f"export name {name!r} is empty or too long")
        out += struct.pack("<HBBI", len(raw), 0, 0, pc // 4) + raw
        _pad4(out)
    return bytes(out)


def _data_payload(segments: tuple[SegmentDesc, ...]) -> bytes:
    out = bytearray(struct.pack("<I", len(segments)))
    for seg in segments:
        if seg.perms != "rw":
            raise ContainerError(
                "BAD_DATA", f"segment {seg.name!r} ({seg.perms}) is not a writable data segment",
                segments=(seg.name,),
            )
        init = seg.init or b""
        if len(init) > seg.size or not 0 <= seg.base <= 0xFFFF_FFFF or seg.size > 0xFFFF_FFFF:
            raise ContainerError("BAD_DATA", f"segment {seg.name!r} cannot be stored", segments=(seg.name,))
        out += struct.pack("<II", seg.base, seg.size) + init + bytes(seg.size - len(init))
        _pad4(out)
    return bytes(out)


def _debug_payload(debug: dict[int, DebugLine]) -> bytes:
    sources: dict[str, int] = {}
    for pc in sorted(debug):
        sources.setdefault(debug[pc].source, len(sources))
    out = bytearray(struct.pack("<I", len(sources)))
    for src in sources:
        raw = src.encode("utf-8")
        out += struct.pack("<H", len(raw)) + raw
        _pad4(out)
    out += struct.pack("<I", len(debug))
    for pc in sorted(debug):
        out += struct.pack("<III", pc, debug[pc].line, sources[debug[pc].source])
    return bytes(out)


def write_zasm_bin(image: ModuleImage) -> bytes:
    """Serialise a ModuleImage as ``.zasm.bin`` v2 (deterministic).

    Sections in order CODE, EXPT, IMPT, MEM, DATA, ZDBG, each written only when the
    image has something for it; DATA segments are stored at full size (zero tail
    written out), so they read back with ``init`` of length ``size``.
    """
    if not image.code or len(image.code) % 4:
        raise VerifyError("CODE_ALIGN", "CODE must be a non-empty multiple of 4 bytes")
    if image.entry_pc < 0 or image.entry_pc % 4 or image.entry_pc // 4 > 0xFFFF_FFFF:
        raise VerifyError("BAD_ENTRY", f"entry pc {image.entry_pc} is not a word offset", pc=image.entry_pc)
    if "main" in image.exports and image.exports["main"] != image.entry_pc:
        raise ContainerError("ENTRY_MISMATCH", "the entry differs from the exported main")
    payloads: list[tuple[bytes, bytes]] = [(TAG_CODE, bytes(image.code))]
    if image.exports:
        payloads.append((TAG_EXPT, _export_payload(image.exports)))
    if image.imports is not None:
        if image.imports & ~PRIM_MASK_ALL or image.imports < 0:
            raise ContainerError("BAD_IMPORTS", f"import mask {image.imports:#x} has unknown bits")
        payloads.append((TAG_IMPT, struct.pack("<II", image.imports, 0)))
    if image.mem_min is not None:
        hi = image.mem_max or 0
        if not MEM_MIN_BYTES <= image.mem_min <= 0xFFFF_FFFF or (hi and not image.mem_min <= hi <= 0xFFFF_FFFF):
            raise ContainerError("BAD_MEM", f"memory requirements {image.mem_min}/{hi} cannot be stored")
        payloads.append((TAG_MEM, struct.pack("<II", image.mem_min, hi)))
    elif image.mem_max:
        raise ContainerError("BAD_MEM", "a maximum memory size needs a minimum in .zasm.bin")
    if image.segments:
        payloads.append((TAG_DATA, _data_payload(image.segments)))
    if image.debug:
        payloads.append((TAG_DEBUG, _debug_payload(image.debug)))

    dir_off = HEADER_SIZE
    pos = dir_off + ENTRY_SIZE * len(payloads)
    directory = bytearray()
    body = bytearray()
    for tag, payload in payloads:
        directory += _ENTRY.pack(tag, pos, len(payload), 0, 0)
        body += payload
        pos += len(payload)
    file_len = dir_off + len(directory) + len(body)
    header = _HEADER.pack(
        MAGIC, VERSION, 0, file_len, dir_off, len(payloads), image.entry_pc // 4, 0, 0, 0, 0
    )
    return header + bytes(directory) + bytes(body)
