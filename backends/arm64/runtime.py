"""AArch64 machine code the arm64 engine maps next to the generated code.

One read-only, executable *runtime page* holds

* the trampoline ``host_call`` points to: ``svc #0; ret``. The engine's ``svc``
  hook reads ``host_call``'s arguments from x0..x5 (ctx, op, a, b, c, d), runs
  the handler in Python and writes the status to x0;
* ``memmove`` and ``memset`` (``fn_memmove``/``fn_memset``), plain loops that move
  8 bytes at a time, so guest block copies never leave the emulator;
* the *sentinel*: the return address of every run (``emu_start`` stops there).

There is no assembler for AArch64 in the toolchain (llvmlite has no asm parser),
so the few instructions are encoded here; ``tests/test_arm64_engine.py`` checks
them with capstone and runs the loops against a Python reference.

:func:`frame_bound` measures the stack one guest call level can use in AArch64
code (the JIT's :func:`~zjit.backends.native.stack.frame_bound` reads x86-64).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

HOST_FUNCS = ("host_call",)
"""Context fields that point to a trampoline (in page order)."""
TRAMPOLINE_SIZE = 16
SENTINEL_OFFSET = 0x40
MEMMOVE_OFFSET = 0x80
MEMSET_OFFSET = 0x180
PAGE = 0x1000

RET = 0xD65F03C0
NOP = 0xD503201F
BRK0 = 0xD4200000
SVC0 = 0xD4000001
COND = {"eq": 0, "ne": 1, "hs": 2, "lo": 3, "hi": 8, "ls": 9}

Item = int | tuple[str, ...]


def _assemble(items: Sequence[Item]) -> bytes:
    """Words and ``("label", name)`` / branch tuples -> little-endian code.

    Branches: ``("b", label)``, ``("b.<cond>", label)``, ``("cbz", reg, label)``.
    """
    labels: dict[str, int] = {}
    at = 0
    for it in items:
        if isinstance(it, tuple) and it[0] == "label":
            labels[it[1]] = at
        else:
            at += 4
    words: list[int] = []
    for it in items:
        if isinstance(it, int):
            words.append(it)
            continue
        if it[0] == "label":
            continue
        delta = (labels[it[-1]] - 4 * len(words)) >> 2
        if it[0] == "b":
            words.append(0x14000000 | delta & 0x3FFFFFF)
        elif it[0].startswith("b."):
            words.append(0x54000000 | (delta & 0x7FFFF) << 5 | COND[it[0][2:]])
        elif it[0] == "cbz":
            words.append(0xB4000000 | (delta & 0x7FFFF) << 5 | int(it[1][1:]))
        else:
            raise ValueError(f"unknown branch {it[0]!r}")
    return struct.pack(f"<{len(words)}I", *words)


# memmove(x0 = dst, x1 = src, x2 = n) -> x0: forwards unless dst > src (unsigned),
# 8 bytes at a time, then single bytes. Clobbers x1..x4.
MEMMOVE: tuple[Item, ...] = (
    0xAA0003E3,               # mov  x3, x0
    ("cbz", "x2", "done"),
    0xEB01001F,               # cmp  x0, x1
    ("b.hi", "back8"),
    ("label", "fwd8"),
    0xF100205F,               # cmp  x2, #8
    ("b.lo", "fwd1"),
    0xF8408424,               # ldr  x4, [x1], #8
    0xF8008464,               # str  x4, [x3], #8
    0xD1002042,               # sub  x2, x2, #8
    ("b", "fwd8"),
    ("label", "fwd1"),
    ("cbz", "x2", "done"),
    0x38401424,               # ldrb w4, [x1], #1
    0x38001464,               # strb w4, [x3], #1
    0xD1000442,               # sub  x2, x2, #1
    ("b", "fwd1"),
    ("label", "back8"),
    0x8B020021,               # add  x1, x1, x2
    0x8B020063,               # add  x3, x3, x2
    ("label", "bwd8"),
    0xF100205F,               # cmp  x2, #8
    ("b.lo", "bwd1"),
    0xF85F8C24,               # ldr  x4, [x1, #-8]!
    0xF81F8C64,               # str  x4, [x3, #-8]!
    0xD1002042,               # sub  x2, x2, #8
    ("b", "bwd8"),
    ("label", "bwd1"),
    ("cbz", "x2", "done"),
    0x385FFC24,               # ldrb w4, [x1, #-1]!
    0x381FFC64,               # strb w4, [x3, #-1]!
    0xD1000442,               # sub  x2, x2, #1
    ("b", "bwd1"),
    ("label", "done"),
    RET,
)

# memset(x0 = dst, w1 = byte, x2 = n) -> x0. Clobbers x2..x5.
MEMSET: tuple[Item, ...] = (
    0xAA0003E3,               # mov  x3, x0
    0x92401C24,               # and  x4, x1, #0xff
    0xB200C3E5,               # mov  x5, #0x0101010101010101
    0x9B057C84,               # mul  x4, x4, x5
    ("label", "set8"),
    0xF100205F,               # cmp  x2, #8
    ("b.lo", "set1"),
    0xF8008464,               # str  x4, [x3], #8
    0xD1002042,               # sub  x2, x2, #8
    ("b", "set8"),
    ("label", "set1"),
    ("cbz", "x2", "done"),
    0x38001464,               # strb w4, [x3], #1
    0xD1000442,               # sub  x2, x2, #1
    ("b", "set1"),
    ("label", "done"),
    RET,
)


def runtime_page() -> bytes:
    """The 4 KiB runtime page (see the module docstring for its layout)."""
    page = bytearray(struct.pack("<I", BRK0) * (PAGE // 4))
    for k in range(len(HOST_FUNCS)):
        code = struct.pack("<4I", SVC0, RET, NOP, NOP)
        page[k * TRAMPOLINE_SIZE:(k + 1) * TRAMPOLINE_SIZE] = code
    for offset, items in ((MEMMOVE_OFFSET, MEMMOVE), (MEMSET_OFFSET, MEMSET)):
        code = _assemble(items)
        page[offset:offset + len(code)] = code
    return bytes(page)


def host_function_offsets() -> dict[str, int]:
    """Context function field -> offset of its code in the runtime page."""
    out = {name: k * TRAMPOLINE_SIZE for k, name in enumerate(HOST_FUNCS)}
    out["fn_memmove"] = MEMMOVE_OFFSET
    out["fn_memset"] = MEMSET_OFFSET
    return out


# ----------------------------------------------------------------------------- frames

FRAME_SLACK = 64
"""Bytes added to the measured frame (rounding, the return address in LR)."""
UNKNOWN_FRAME = 64 << 10
"""Frame assumed for a function that moves sp by a register amount."""


def _sp_decrement(word: int) -> int | None:
    """Bytes an instruction moves sp down: 0 for most, None when unknown."""
    if word & 0xFF8003FF == 0xD10003FF:  # sub sp, sp, #imm{, lsl #12}
        return ((word >> 10) & 0xFFF) << (12 if word >> 22 & 1 else 0)
    if word & 0xFFE0FFFF == 0xCB2063FF:  # sub sp, sp, xN (extended register)
        return None
    scale = {0xA98003E0: 8, 0x6D8003E0: 8, 0xAD8003E0: 16}.get(word & 0xFFC003E0)
    if scale is not None:  # stp (x, d, q) ..., [sp, #-imm]!
        imm7 = (word >> 15) & 0x7F
        return (128 - imm7) * scale if imm7 & 0x40 else 0
    if word & 0x3FE00FE0 in (0x38000FE0, 0x3C000FE0, 0x3C800FE0):  # str ..., [sp, #-imm]!
        imm9 = (word >> 12) & 0x1FF
        return 512 - imm9 if imm9 & 0x100 else 0
    return 0


def frame_bound(code: bytes, functions: Sequence[tuple[int, int]]) -> int:
    """Upper bound of the stack one function activation uses: the largest sum of
    sp decrements over the ``(start, size)`` functions of ``code``."""
    largest = 0
    for start, size in functions:
        total = 0
        for (word,) in struct.iter_unpack("<I", code[start:start + (size & ~3)]):
            dec = _sp_decrement(word)
            if dec is None:
                return UNKNOWN_FRAME
            total += dec
        largest = max(largest, total)
    return largest + FRAME_SLACK
