"""Stencils taken from objects: machine code with holes, for copy-and-patch.

A stencil is one function of a stencil object (``backends/llvm/stencils.py``
writes them, the compile worker compiles them in stencil mode: static
relocations, and on AArch64 the large code model): its bytes, and its
relocations as *holes*. Every hole names an external symbol and says how a value
goes in:

* jumps and calls (x86-64 ``rel32``, AArch64 ``b``/``bl``/``b.cond``) to the
  continuation, a branch target, a trap stub or a runtime routine: patched with
  the distance to where that code ends up;
* values (x86-64 ``imm8``/``imm32``/``imm64``, AArch64 ``movz``/``movk`` groups):
  immediates, displacements, limits, pcs, costs, entry ids... patched with the
  value itself; the symbols carry an ``!absolute_symbol`` range, so LLVM puts
  them into instruction immediates.

:func:`extract` reads them with the project's ELF reader; :func:`diff_hole`
finds an 8-bit immediate LLVM would not take from a symbol (x86-64 shift
counts) by comparing two compilations of the same stencil with different
constants. A stencil that ends with a jump to the continuation records it
(:attr:`RawStencil.tail`), so the assembler can leave it out when the
continuation comes next anyway.

Nothing else may be in a stencil object: data sections, relocations against
anything but an external symbol, or relocation types other than those above
raise :class:`~zjit.backends.objfile.elf.ObjectFileError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..targets import EM_AARCH64, EM_X86_64
from . import elf
from .elf import ObjectFileError

CONTINUE = "_JIT_CONT"
"""Symbol of the code that follows a stencil."""

# Hole kinds.
REL32 = "rel32"
"""x86-64: signed 32-bit distance from the end of the field (addend -4 included)."""
IMM8 = "imm8"
IMM32 = "imm32"
"""x86-64: a 32-bit immediate (sign- or zero-extended by the instruction)."""
IMM64 = "imm64"
B26 = "b26"
"""AArch64 ``b``/``bl``: 26-bit word distance."""
BCC19 = "bcc19"
"""AArch64 ``b.cond``/``cbz``: 19-bit word distance at bit 5."""
MOVW = ("movw0", "movw1", "movw2", "movw3")
"""AArch64 ``movz``/``movk``: 16-bit group k of the value at bit 5."""

_X86_KINDS = {2: REL32, 4: REL32, 10: IMM32, 11: IMM32, 1: IMM64, 14: IMM8}
# R_X86_64_PC32, PLT32, 32, 32S, 64, R_X86_64_8
_A64_KINDS = {282: B26, 283: B26, 280: BCC19,
              263: MOVW[0], 264: MOVW[0], 265: MOVW[1], 266: MOVW[1], 267: MOVW[2], 268: MOVW[2], 269: MOVW[3]}
# JUMP26 CALL26 CONDBR19; MOVW_UABS_G0 G0_NC G1 G1_NC G2 G2_NC G3
PC_RELATIVE = frozenset({REL32, B26, BCC19})
"""Hole kinds patched with a distance rather than a value."""


@dataclass(frozen=True, slots=True)
class Hole:
    """One place in a stencil's code where a value or a distance goes."""

    offset: int
    kind: str
    symbol: str
    addend: int = 0


@dataclass(frozen=True, slots=True)
class RawStencil:
    """A stencil as extracted: code, holes, and the trailing continuation jump."""

    name: str
    code: bytes
    holes: tuple[Hole, ...]
    tail: int = 0
    """Bytes of the final jump to :data:`CONTINUE` (0 when it does not end so)."""

    @property
    def body(self) -> bytes:
        """The code without the trailing continuation jump."""
        return self.code[: len(self.code) - self.tail]

    def body_holes(self) -> tuple[Hole, ...]:
        """The holes of :attr:`body`."""
        end = len(self.code) - self.tail
        return tuple(h for h in self.holes if h.offset < end)


def extract(obj: bytes, machine: int) -> dict[str, RawStencil]:
    """Every function of a stencil object, by name."""
    parsed = elf.parse_elf(obj)
    if parsed.machine != machine or machine not in (EM_X86_64, EM_AARCH64):
        raise ObjectFileError(f"stencil object is for ELF machine {parsed.machine}, expected {machine}")
    kinds = _X86_KINDS if machine == EM_X86_64 else _A64_KINDS
    for sec in parsed.sections:
        if sec.alloc and sec.size and not sec.flags & elf.SHF_EXECINSTR and not sec.name.startswith(".eh_frame"):
            raise ObjectFileError(f"stencil object has a data section {sec.name}")
    relocs: dict[int, list[elf.Relocation]] = {}
    for rel in parsed.relocations:
        relocs.setdefault(rel.target, []).append(rel)
    out: dict[str, RawStencil] = {}
    for sym in parsed.symbols:
        if sym.type != elf.STT_FUNC or not sym.defined or sym.shndx >= elf.SHN_LORESERVE:
            continue
        sec = parsed.sections[sym.shndx]
        if not sec.flags & elf.SHF_EXECINSTR:
            continue
        start, end = sym.value, sym.value + sym.size
        code = sec.data[start:end]
        if len(code) != sym.size:
            raise ObjectFileError(f"stencil {sym.name!r} lies outside its section")
        holes: list[Hole] = []
        for rel in relocs.get(sec.index, ()):
            if not start <= rel.offset < end:
                continue
            target = parsed.symbols[rel.sym]
            if target.shndx != elf.SHN_UNDEF or not target.name:
                raise ObjectFileError(f"stencil {sym.name!r} refers to {target.name or 'a section'!r}, "
                                      "not to an external symbol")
            kind = kinds.get(rel.type)
            if kind is None:
                raise ObjectFileError(f"stencil {sym.name!r}: unsupported relocation type {rel.type}")
            addend = rel.addend
            if kind == REL32:
                addend += 4  # distances are taken from the end of the field
            holes.append(Hole(rel.offset - start, kind, target.name, addend))
        holes.sort(key=lambda h: h.offset)
        out[sym.name] = RawStencil(sym.name, code, tuple(holes), _tail(code, holes, machine))
    return out


def _tail(code: bytes, holes: list[Hole], machine: int) -> int:
    """Length of a final unconditional jump to the continuation, else 0."""
    if not holes:
        return 0
    last = holes[-1]
    if last.symbol != CONTINUE or last.addend != 0:
        return 0
    if machine == EM_X86_64:
        ok = last.kind == REL32 and last.offset == len(code) - 4 and code[-5:-4] == b"\xe9"
        return 5 if ok else 0
    word = int.from_bytes(code[-4:], "little")
    ok = last.kind == B26 and last.offset == len(code) - 4 and word & 0xFC000000 == 0x14000000
    return 4 if ok else 0


def diff_hole(a: RawStencil, b: RawStencil, name: str, candidates: list[tuple[str, int, int]]) -> RawStencil:
    """One stencil from two compilations that differ only in an 8-bit immediate:
    that byte becomes an :data:`IMM8` hole named by the first ``(symbol, value in
    a, value in b)`` candidate whose values it holds (LLVM may encode a rotate
    right by c as a rotate left by width - c, say)."""
    if len(a.code) != len(b.code) or a.holes != b.holes or a.tail != b.tail:
        raise ObjectFileError(f"stencil {name!r}: the two compilations differ in shape")
    diff = [i for i, (x, y) in enumerate(zip(a.code, b.code, strict=True)) if x != y]
    if len(diff) == 1:
        for symbol, va, vb in candidates:
            if a.code[diff[0]] == va and b.code[diff[0]] == vb:
                code = a.code[: diff[0]] + b"\0" + a.code[diff[0] + 1:]
                holes = tuple(sorted((*a.holes, Hole(diff[0], IMM8, symbol)), key=lambda h: h.offset))
                return RawStencil(name, code, holes, a.tail)
    raise ObjectFileError(f"stencil {name!r}: the immediate is not one byte")


# --------------------------------------------------------------------------- patching

Patcher = Callable[[bytearray, int, int], None]
"""``patch(buf, at, value)``: write a hole's value (or distance) at ``at``."""

_I8 = struct.Struct("<B").pack_into
_I32 = struct.Struct("<I").pack_into
_I64 = struct.Struct("<Q").pack_into
_U32 = struct.Struct("<I")


def _imm8(buf: bytearray, at: int, v: int) -> None:
    _I8(buf, at, v & 0xFF)


def _imm32(buf: bytearray, at: int, v: int) -> None:
    _I32(buf, at, v & 0xFFFF_FFFF)


def _imm64(buf: bytearray, at: int, v: int) -> None:
    _I64(buf, at, v & 0xFFFF_FFFF_FFFF_FFFF)


def _b26(buf: bytearray, at: int, v: int) -> None:
    (w,) = _U32.unpack_from(buf, at)
    _I32(buf, at, (w & 0xFC000000) | ((v >> 2) & 0x3FFFFFF))


def _bcc19(buf: bytearray, at: int, v: int) -> None:
    (w,) = _U32.unpack_from(buf, at)
    _I32(buf, at, (w & ~(0x7FFFF << 5) & 0xFFFF_FFFF) | (((v >> 2) & 0x7FFFF) << 5))


def _movw(shift: int) -> Patcher:
    def patch(buf: bytearray, at: int, v: int) -> None:
        (w,) = _U32.unpack_from(buf, at)
        _I32(buf, at, (w & ~(0xFFFF << 5) & 0xFFFF_FFFF) | (((v >> shift) & 0xFFFF) << 5))

    return patch


PATCHERS: dict[str, Patcher] = {IMM8: _imm8, IMM32: _imm32, IMM64: _imm64, REL32: _imm32,
                                B26: _b26, BCC19: _bcc19,
                                **{k: _movw(16 * i) for i, k in enumerate(MOVW)}}
"""Hole kind -> how to write its value (for pc-relative kinds: the distance)."""


def check_distance(kind: str, distance: int) -> None:
    """Raise ObjectFileError when ``distance`` does not fit a pc-relative hole."""
    bits = {REL32: 32, B26: 28, BCC19: 21}[kind]
    if not -(1 << (bits - 1)) <= distance < (1 << (bits - 1)) or (kind != REL32 and distance & 3):
        raise ObjectFileError(f"{kind} distance {distance:#x} out of range")
