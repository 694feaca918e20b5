"""Guest memory layout and constant pools shared by the program generators.

Generated programs keep loop and recursion counters in a region no random store,
bulk operation or primitive ever writes, which is what makes every generated loop
terminate no matter what the random instructions compute.
"""

from __future__ import annotations

from zjit.isa import MASK64, sext

LOW_END = 0x100
"""``[0, LOW_END)``: free store area (also where a failed ALLOC's address 0 points)."""
SLOT_BASE = 0x100
"""Counters for loops and recursion, 8 bytes each, up to :data:`SLOT_END`."""
SLOT_END = 0x1000
SCRATCH = 0x1000
"""The assembled data segment (writable, random initial bytes)."""
SCRATCH_SIZE = 512
TEXT_BYTES = 64
"""The first bytes of the scratch segment are printable (readable OUT/LOG output)."""
POOL = SCRATCH + SCRATCH_SIZE
"""Constant pool (u64 values, :data:`INTERESTING` then per-program random values)
after the scratch bytes, in the same data segment. Nothing writes it, so a load
from it gives a value the JIT cannot know at compile time."""
POOL_EXTRA = 16
RO_BASE = 0x2000
"""Optional read-only segment added to the image."""
RO_SIZE = 256
MID_BASE = 0x2200
"""Above the segments: free for stores (also where the heap grows)."""
MEM_SIZES: tuple[int, ...] = (0x10000, 0x10000, 0x18000, 0x20000, 0x10008, 0x12345)
"""Guest memory sizes the generator picks from (some not multiples of 8)."""

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

INTERESTING: tuple[int, ...] = (
    0, 1, -1, 2, 3, 7, 8, 31, 32, 33, 63, 64, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
    2046, 2047, 2048, -2046, -2047, -2048, -2049,
    INT32_MAX, INT32_MIN, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE, 1 << 32, (1 << 32) + 1,
    (1 << 32) - 1, INT32_MIN - 1, INT64_MIN, INT64_MAX, INT64_MIN + 1, -(1 << 32),
    sext(0x5555_5555_5555_5555, 64), sext(0xAAAA_AAAA_AAAA_AAAA, 64),
    0x0123_4567_89AB_CDEF, sext(0x8000_0000_0000_0001, 64), 0x1_0000_0001,
)
"""Constants that sit on width and sign boundaries, plus a few bit patterns."""

ALLOC_SIZES: tuple[int, ...] = (
    0, 1, 7, 8, 9, 16, 24, 100, 4096, 0x8000, 0x10000, 1 << 32, INT64_MAX, -1, -8,
)
"""ALLOC requests: zero, small, page-sized, too big, and sizes that overflow."""


def to_signed(value: int) -> int:
    """``value`` as a signed 64-bit integer (how immediates are written)."""
    return sext(value & MASK64, 64)


def low32_nonzero(value: int) -> bool:
    """True when the low 32 bits are not all zero (a safe divisor at any width)."""
    return (value & 0xFFFF_FFFF) != 0


SAFE_DIVISORS: tuple[int, ...] = tuple(v for v in INTERESTING if low32_nonzero(v))
