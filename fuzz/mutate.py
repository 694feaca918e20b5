"""Damaging valid files: the mutations of the container fuzz tests and campaign.

One definition serves both: the hypothesis strategy of ``tests/mutation.py``
drives it with a :class:`~zjit.fuzz.choosers.DrawChooser` (shrinking), the
campaign of :mod:`zjit.fuzz.containers` with a seeded
:class:`~zjit.fuzz.choosers.RandomChooser`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from .choosers import Chooser

KINDS = ("flip", "set", "u32", "truncate", "extend")
"""Edits every mutation may make; ``fix`` joins them when a fixer is given."""

INTERESTING_U32 = (0, 1, 2, 4, 8, 15, 16, 0x7F, 0x80, 0xFF, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000,
                   0xFFFF_FFF0, 0xFFFF_FFFC, 0xFFFF_FFFE, 0xFFFF_FFFF)
"""Values a ``u32`` edit writes: sizes, counts and offsets at their edges."""

Fixer = Callable[[bytearray], None]


def mutate(data: bytes, c: Chooser, fix: Fixer | None = None, max_extend: int = 40) -> bytes:
    """``data`` after 1-6 edits: flip a bit, set a byte, write an edge value (or the
    file's length, or a neighbour of either) into an aligned u32, truncate, extend,
    or (when ``fix`` is given) re-fix what a reader checks first, such as a length
    field or a checksum, so the damage reaches deeper rules."""
    kinds = KINDS + (("fix",) if fix is not None else ())
    out = bytearray(data)
    for _ in range(c.randint(1, 6)):
        kind = c.choice(kinds)
        if kind in ("flip", "set") and out:
            i = c.randint(0, len(out) - 1)
            out[i] = out[i] ^ (1 << c.randint(0, 7)) if kind == "flip" else c.randint(0, 255)
        elif kind == "u32" and len(out) >= 4:
            at = 4 * c.randint(0, len(out) // 4 - 1)
            value = c.choice((*INTERESTING_U32, len(out), c.randint(0, 0xFFFF_FFFF)))
            value = (value + c.choice((0, 0, 1, -1))) & 0xFFFF_FFFF
            struct.pack_into("<I", out, at, value)
        elif kind == "truncate" and out:
            del out[c.randint(0, len(out) - 1):]
        elif kind == "extend":
            out += c.randbytes(c.randint(1, max_extend))
        elif kind == "fix" and fix is not None:
            fix(out)
    return bytes(out)


def fix_zasm(data: bytearray) -> None:
    """Re-fix what a ``.zasm.bin`` reader checks first: ``file_len`` (offset 8)."""
    if len(data) >= 12:
        struct.pack_into("<I", data, 8, len(data))


def fix_rom(data: bytearray) -> None:
    """Re-fix what a ROM reader checks first: ``rom_size`` (offset 0x18) and, when
    the checksum flag is set, the CRC-32 (offset 0x1C)."""
    from zjit.container.rom import CHECKSUM_AT, FLAG_CHECKSUM

    if len(data) >= 64:
        struct.pack_into("<I", data, 0x18, len(data))
        struct.pack_into("<I", data, CHECKSUM_AT, 0)
        if data[8] & FLAG_CHECKSUM:
            struct.pack_into("<I", data, CHECKSUM_AT, zlib.crc32(data))
