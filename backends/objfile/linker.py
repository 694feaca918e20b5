"""Static linker for one LLVM object: layout, GOT, call stubs and relocations.

:func:`plan` lays an object's allocated sections out in three page-aligned
regions, independent of where the image will live:

* ``text``   (``rx``): executable sections, then call stubs (x86-64
  ``jmp *[rip+GOT]``) or veneers (AArch64 ``ldr x16, #8; br x16; .quad addr``);
* ``rodata`` (``r``): read-only sections, ``.data.rel.ro*`` and the GOT;
* ``data``   (``rw``): writable sections, ``.bss`` and common symbols.

``.eh_frame`` is dropped (nothing unwinds through JIT code); constructors, TLS
and unknown allocated section types are rejected. :meth:`LinkPlan.link` then
resolves symbols for a given base address and applies the relocations, giving
a :class:`LinkedImage` (bytes per region plus symbol addresses). The x86-64 path
is used by :mod:`zjit.backends.native.loader`; the AArch64 path serves emulated
engines (any 4 KiB-aligned guest base) and AOT checks.

Every failure raises :class:`~zjit.backends.objfile.elf.ObjectFileError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..targets import EM_AARCH64, EM_X86_64
from . import elf
from .elf import ElfObject, ObjectFileError, Relocation, Section, Symbol

PAGE_SIZE = 4096
MAX_IMAGE_BYTES = 1 << 30

# x86-64 relocation types (System V psABI).
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_GOTPCREL = 9
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24
R_X86_64_GOTPCRELX = 41
R_X86_64_REX_GOTPCRELX = 42

# AArch64 relocation types (AAELF64).
R_AARCH64_ABS64 = 257
R_AARCH64_ABS32 = 258
R_AARCH64_PREL64 = 260
R_AARCH64_PREL32 = 261
R_AARCH64_ADR_PREL_LO21 = 274
R_AARCH64_ADR_PREL_PG_HI21 = 275
R_AARCH64_ADR_PREL_PG_HI21_NC = 276
R_AARCH64_ADD_ABS_LO12_NC = 277
R_AARCH64_LDST8_ABS_LO12_NC = 278
R_AARCH64_TSTBR14 = 279
R_AARCH64_CONDBR19 = 280
R_AARCH64_JUMP26 = 282
R_AARCH64_CALL26 = 283
R_AARCH64_LDST16_ABS_LO12_NC = 284
R_AARCH64_LDST32_ABS_LO12_NC = 285
R_AARCH64_LDST64_ABS_LO12_NC = 286
R_AARCH64_LDST128_ABS_LO12_NC = 299
R_AARCH64_ADR_GOT_PAGE = 311
R_AARCH64_LD64_GOT_LO12_NC = 312

_X86_GOT_TYPES = frozenset({R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX})
_A64_GOT_TYPES = frozenset({R_AARCH64_ADR_GOT_PAGE, R_AARCH64_LD64_GOT_LO12_NC})
_A64_BRANCH_TYPES = frozenset({R_AARCH64_CALL26, R_AARCH64_JUMP26})
_WIDE_X86 = frozenset({R_X86_64_64, R_X86_64_PC64})
_WIDE_A64 = frozenset({R_AARCH64_ABS64, R_AARCH64_PREL64})
_A64_LDST_SHIFT = {
    R_AARCH64_ADD_ABS_LO12_NC: 0,
    R_AARCH64_LDST8_ABS_LO12_NC: 0,
    R_AARCH64_LDST16_ABS_LO12_NC: 1,
    R_AARCH64_LDST32_ABS_LO12_NC: 2,
    R_AARCH64_LDST64_ABS_LO12_NC: 3,
    R_AARCH64_LDST128_ABS_LO12_NC: 4,
}

SHT_X86_64_UNWIND = 0x70000001
X86_STUB_SIZE = 8  # jmp qword ptr [rip+disp32] (6 bytes) + 2 x int3
A64_VENEER_SIZE = 16  # ldr x16, #8 ; br x16 ; .quad target
_A64_VENEER_CODE = struct.pack("<II", 0x58000050, 0xD61F0200)
_U64 = (1 << 64) - 1

REGION_PERMS = {"text": "rx", "rodata": "r", "data": "rw"}


@dataclass(frozen=True)
class Region:
    """One mapped region of a linked image."""

    name: str
    """``text``, ``rodata`` or ``data``."""
    perms: str
    """``rx``, ``r`` or ``rw``."""
    offset: int
    """Page-aligned offset from the image base."""
    size: int
    """Mapping size (page multiple)."""
    data: bytes
    """Initial contents (``len(data) <= size``; the rest is zero)."""


@dataclass(frozen=True)
class LinkedImage:
    """A relocated image for a fixed base address."""

    machine: int
    base: int
    size: int
    regions: tuple[Region, ...]
    symbols: dict[str, int]
    """Defined symbol name -> absolute address (globals win over locals)."""
    code_size: int
    """Bytes of generated code at the start of ``text`` (stubs excluded)."""

    def region(self, name: str) -> Region | None:
        """The region called ``name``, or None when the object has none."""
        for r in self.regions:
            if r.name == name:
                return r
        return None

    def code_range(self) -> tuple[int, int]:
        """``(start, end)`` of the generated code (stubs excluded)."""
        text = self.region("text")
        start = self.base + (text.offset if text is not None else 0)
        return start, start + self.code_size


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & -alignment


def _classify(sec: Section, machine: int) -> str | None:
    """Region of an allocated section, or None when it is dropped."""
    if not sec.alloc:
        return None
    if sec.name.startswith(".eh_frame") or (machine == EM_X86_64 and sec.type == SHT_X86_64_UNWIND):
        return None
    if sec.type in (elf.SHT_INIT_ARRAY, elf.SHT_FINI_ARRAY, elf.SHT_PREINIT_ARRAY):
        if sec.size:
            raise ObjectFileError(f"section {sec.name} needs constructors, which are not supported")
        return None
    if sec.type not in (elf.SHT_PROGBITS, elf.SHT_NOBITS):
        raise ObjectFileError(f"allocated section {sec.name} has unsupported type {sec.type:#x}")
    if sec.flags & elf.SHF_TLS:
        raise ObjectFileError(f"thread-local section {sec.name} is not supported")
    if sec.flags & elf.SHF_EXECINSTR:
        if sec.flags & elf.SHF_WRITE:
            raise ObjectFileError(f"section {sec.name} is both writable and executable")
        return "text"
    if sec.flags & elf.SHF_WRITE:
        return "rodata" if sec.name.startswith(".data.rel.ro") else "data"
    return "rodata"


@dataclass
class LinkPlan:
    """Base-independent layout of one object (see :func:`plan`)."""

    obj: ElfObject
    page_size: int
    size: int = 0
    section_at: dict[int, int] = field(default_factory=dict)
    """Kept section index -> offset from the image base."""
    section_region: dict[int, str] = field(default_factory=dict)
    regions: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Region name -> (offset, bytes with content, bytes in memory incl. zero fill)."""
    stubs: dict[tuple[int, int], int] = field(default_factory=dict)
    """(symbol index, addend) -> offset of its call stub/veneer."""
    got: dict[tuple[int, int], int] = field(default_factory=dict)
    """(symbol index, addend) -> offset of its GOT slot."""
    common: dict[int, int] = field(default_factory=dict)
    code_size: int = 0

    def link(self, base: int, externals: Mapping[str, int] | None = None) -> LinkedImage:
        """Resolve symbols and apply relocations for an image at ``base``."""
        return _Linker(self, base, externals or {}).run()


def plan(obj: bytes | ElfObject, *, page_size: int = PAGE_SIZE) -> LinkPlan:
    """Lay ``obj`` out in page-aligned text / rodata / data regions."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        obj = elf.parse_elf(bytes(obj))
    if obj.machine not in (EM_X86_64, EM_AARCH64):
        raise ObjectFileError(f"unsupported ELF machine {obj.machine}")
    if page_size <= 0 or page_size & (page_size - 1):
        raise ObjectFileError(f"page size {page_size} is not a power of two")
    p = LinkPlan(obj, page_size)
    x86 = obj.machine == EM_X86_64
    groups: dict[str, list[Section]] = {"text": [], "rodata": [], "data": []}
    for sec in obj.sections:
        region = _classify(sec, obj.machine)
        if region is not None:
            if sec.align > page_size:
                raise ObjectFileError(f"section {sec.name} alignment {sec.align} exceeds the page size")
            groups[region].append(sec)
            p.section_region[sec.index] = region
    # Which symbols need a stub or a GOT slot?
    stub_keys: list[tuple[int, int]] = []
    got_keys: list[tuple[int, int]] = []
    for rel in obj.relocations:
        if rel.target not in p.section_region:
            continue  # relocation inside a dropped section (.eh_frame)
        sym = obj.symbols[rel.sym] if rel.sym < len(obj.symbols) else None
        external = sym is not None and sym.shndx == elf.SHN_UNDEF and rel.sym != 0
        if x86:
            if rel.type == R_X86_64_PLT32 and external:
                stub_keys.append((rel.sym, 0))
                got_keys.append((rel.sym, 0))
            elif rel.type in _X86_GOT_TYPES:
                got_keys.append((rel.sym, 0))
        else:
            if rel.type in _A64_BRANCH_TYPES and external:
                stub_keys.append((rel.sym, rel.addend))
            elif rel.type in _A64_GOT_TYPES:
                got_keys.append((rel.sym, rel.addend))

    offset = 0
    for name in ("text", "rodata", "data"):
        start = offset
        cursor = 0
        secs = groups[name]
        if name == "data":  # initialised bytes first, then zero-filled ones
            secs = [s for s in secs if s.type != elf.SHT_NOBITS] + [s for s in secs if s.type == elf.SHT_NOBITS]
        filled = 0
        for sec in secs:
            cursor = _align(cursor, sec.align)
            p.section_at[sec.index] = start + cursor
            cursor += sec.size
            if sec.type != elf.SHT_NOBITS:
                filled = cursor
        if name == "text":
            p.code_size = cursor
            if stub_keys:
                cursor = _align(cursor, 16)
                size = X86_STUB_SIZE if x86 else A64_VENEER_SIZE
                for key in dict.fromkeys(stub_keys):
                    p.stubs[key] = start + cursor
                    cursor += size
                filled = cursor
        elif name == "rodata" and got_keys:
            cursor = _align(cursor, 8)
            for key in dict.fromkeys(got_keys):
                p.got[key] = start + cursor
                cursor += 8
            filled = cursor
        elif name == "data":
            for sym in obj.symbols:
                if sym.shndx == elf.SHN_COMMON:
                    align = max(1, sym.value)  # st_value holds a common symbol's alignment
                    if align & (align - 1) or align > page_size:
                        raise ObjectFileError(f"common symbol {sym.name!r} has bad alignment {align}")
                    cursor = _align(cursor, align)
                    p.common[sym.index] = start + cursor
                    cursor += sym.size
        if cursor:
            p.regions[name] = (start, filled, cursor)
            offset = start + _align(cursor, page_size)
            if offset > MAX_IMAGE_BYTES:
                raise ObjectFileError(f"image larger than {MAX_IMAGE_BYTES >> 20} MiB")
    p.size = max(offset, page_size)
    return p


def link_image(
    obj: bytes | ElfObject,
    base: int,
    externals: Mapping[str, int] | None = None,
    *,
    page_size: int = PAGE_SIZE,
) -> LinkedImage:
    """Link ``obj`` for an image at ``base`` (a multiple of ``page_size``).

    ``externals`` maps undefined symbol names to addresses. Works for x86-64 and
    AArch64 objects whatever the host is, so an emulator can place the image at
    any 4 KiB-aligned guest address.
    """
    return plan(obj, page_size=page_size).link(base, externals)


class _Linker:
    def __init__(self, p: LinkPlan, base: int, externals: Mapping[str, int]) -> None:
        if base % p.page_size or base < 0 or base + p.size > _U64:
            raise ObjectFileError(f"image base {base:#x} is not page-aligned")
        self.p = p
        self.obj = p.obj
        self.base = base
        self.externals = externals
        self.bufs = {name: bytearray(filled) for name, (_off, filled, _mem) in p.regions.items()}
        if p.obj.machine == EM_X86_64 and "text" in self.bufs:
            # int3 in the gaps between functions and before the stubs
            self.bufs["text"] = bytearray(b"\xcc" * len(self.bufs["text"]))

    # -- helpers -----------------------------------------------------------------
    def _place(self, abs_offset: int, data: bytes) -> None:
        for name, (off, filled, _mem) in self.p.regions.items():
            if off <= abs_offset and abs_offset + len(data) <= off + filled:
                self.bufs[name][abs_offset - off : abs_offset - off + len(data)] = data
                return
        raise AssertionError("placement outside every region")

    def sym_addr(self, sym: Symbol) -> int:
        if sym.index == 0:
            return 0
        if sym.shndx == elf.SHN_UNDEF:
            if sym.name in self.externals:
                return self.externals[sym.name] & _U64
            if sym.bind == elf.STB_WEAK:
                return 0
            raise ObjectFileError(f"undefined symbol {sym.name!r} (not in externals)", path=sym.name)
        if sym.shndx == elf.SHN_ABS:
            return sym.value
        if sym.shndx == elf.SHN_COMMON:
            return self.base + self.p.common[sym.index]
        if sym.shndx >= elf.SHN_LORESERVE:
            raise ObjectFileError(f"symbol {sym.name!r} has unsupported section index {sym.shndx:#x}")
        at = self.p.section_at.get(sym.shndx)
        if at is None:
            sec = self.obj.sections[sym.shndx]
            raise ObjectFileError(f"symbol {sym.name or sec.name!r} lives in dropped section {sec.name}")
        return self.base + at + sym.value

    # -- main ----------------------------------------------------------------------
    def run(self) -> LinkedImage:
        obj, p = self.obj, self.p
        for idx, at in p.section_at.items():
            sec = obj.sections[idx]
            if sec.type != elf.SHT_NOBITS and sec.size:
                self._place(at, sec.data)
        x86 = obj.machine == EM_X86_64
        for (symi, addend), slot in p.got.items():
            value = (self.sym_addr(obj.symbols[symi]) + (0 if x86 else addend)) & _U64
            self._place(slot, value.to_bytes(8, "little"))
        for (symi, addend), at in p.stubs.items():
            if x86:
                slot = p.got[(symi, 0)]
                self._place(at, b"\xff\x25" + _s32(slot - (at + 6), "stub") + b"\xcc\xcc")
            else:
                target = (self.sym_addr(obj.symbols[symi]) + addend) & _U64
                self._place(at, _A64_VENEER_CODE + target.to_bytes(8, "little"))
        for rel in obj.relocations:
            if rel.target in p.section_region:
                self._apply(rel, x86)
        regions = tuple(
            Region(name, REGION_PERMS[name], off, _align(length, p.page_size), bytes(self.bufs[name]))
            for name, (off, _filled, length) in p.regions.items()
        )
        return LinkedImage(obj.machine, self.base, p.size, regions, self._symbols(), p.code_size)

    def _symbols(self) -> dict[str, int]:
        out: dict[str, int] = {}
        local: dict[str, int] = {}
        for sym in self.obj.symbols:
            if not sym.name or sym.type in (elf.STT_SECTION, elf.STT_FILE) or not sym.defined:
                continue
            if sym.bind == elf.STB_LOCAL and sym.name.startswith(".L"):
                continue  # assembler-temporary labels (constant pools...)
            if sym.shndx < elf.SHN_LORESERVE and sym.shndx not in self.p.section_at:
                continue
            addr = self.sym_addr(sym)
            (local if sym.bind == elf.STB_LOCAL else out)[sym.name] = addr
        for name, addr in local.items():
            out.setdefault(name, addr)
        return out

    def _apply(self, rel: Relocation, x86: bool) -> None:
        sec = self.obj.sections[rel.target]
        width = 8 if rel.type in (_WIDE_X86 if x86 else _WIDE_A64) else 4
        if sec.type == elf.SHT_NOBITS or rel.offset + width > sec.size:
            raise ObjectFileError(
                f"relocation at {sec.name}+{rel.offset:#x} lies outside its section", offset=rel.file_offset
            )
        at = self.p.section_at[rel.target] + rel.offset
        place = self.base + at
        sym = self.obj.symbols[rel.sym]
        try:
            data = self._x86(rel, sym, place) if x86 else self._a64(rel, sym, place, at)
        except _Overflow as exc:
            raise ObjectFileError(
                f"relocation type {rel.type} at {sec.name}+{rel.offset:#x} against "
                f"{sym.name or 'section'!r} does not fit ({exc})",
                offset=rel.file_offset,
            ) from None
        self._place(at, data)

    def _x86(self, rel: Relocation, sym: Symbol, place: int) -> bytes:
        t, a = rel.type, rel.addend
        if t == R_X86_64_64:
            return ((self.sym_addr(sym) + a) & _U64).to_bytes(8, "little")
        if t == R_X86_64_PC64:
            return ((self.sym_addr(sym) + a - place) & _U64).to_bytes(8, "little")
        if t == R_X86_64_PC32:
            return _s32(self.sym_addr(sym) + a - place, "PC32")
        if t == R_X86_64_PLT32:
            stub = self.p.stubs.get((rel.sym, 0))
            target = self.base + stub if stub is not None else self.sym_addr(sym)
            return _s32(target + a - place, "PLT32")
        if t in _X86_GOT_TYPES:
            return _s32(self.base + self.p.got[(rel.sym, 0)] + a - place, "GOTPCREL")
        if t == R_X86_64_32:
            v = self.sym_addr(sym) + a
            if not 0 <= v <= 0xFFFFFFFF:
                raise _Overflow(f"{v:#x} is not a 32-bit unsigned value; compile with reloc=pic")
            return v.to_bytes(4, "little")
        if t == R_X86_64_32S:
            return _s32(self.sym_addr(sym) + a, "32S (compile with reloc=pic)")
        raise ObjectFileError(
            f"unsupported x86-64 relocation type {t} at {self.obj.sections[rel.target].name}+{rel.offset:#x}",
            offset=rel.file_offset,
        )

    def _a64(self, rel: Relocation, sym: Symbol, place: int, at: int) -> bytes:
        t, a = rel.type, rel.addend
        buf = self.bufs[self.p.section_region[rel.target]]
        region_off = self.p.regions[self.p.section_region[rel.target]][0]
        if t == R_AARCH64_ABS64:
            return ((self.sym_addr(sym) + a) & _U64).to_bytes(8, "little")
        if t == R_AARCH64_PREL64:
            return ((self.sym_addr(sym) + a - place) & _U64).to_bytes(8, "little")
        if t in (R_AARCH64_ABS32, R_AARCH64_PREL32):
            v = self.sym_addr(sym) + a - (place if t == R_AARCH64_PREL32 else 0)
            if not -(1 << 31) <= v < (1 << 32):
                raise _Overflow(f"{v:#x} does not fit in 32 bits")
            return (v & 0xFFFFFFFF).to_bytes(4, "little")
        insn = int.from_bytes(buf[at - region_off : at - region_off + 4], "little")
        if t in _A64_BRANCH_TYPES:
            stub = self.p.stubs.get((rel.sym, a))
            if stub is not None:
                delta = self.base + stub - place
            else:
                delta = self.sym_addr(sym) + a - place
            _check_signed(delta, 28, "branch")
            insn = (insn & ~0x3FFFFFF) | ((delta >> 2) & 0x3FFFFFF)
        elif t == R_AARCH64_CONDBR19:
            delta = self.sym_addr(sym) + a - place
            _check_signed(delta, 21, "conditional branch")
            insn = (insn & ~(0x7FFFF << 5)) | (((delta >> 2) & 0x7FFFF) << 5)
        elif t == R_AARCH64_TSTBR14:
            delta = self.sym_addr(sym) + a - place
            _check_signed(delta, 16, "test branch")
            insn = (insn & ~(0x3FFF << 5)) | (((delta >> 2) & 0x3FFF) << 5)
        elif t == R_AARCH64_ADR_PREL_LO21:
            insn = _adr(insn, self.sym_addr(sym) + a - place, check=True)
        elif t in (R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADR_PREL_PG_HI21_NC):
            pages = ((self.sym_addr(sym) + a) & ~0xFFF) - (place & ~0xFFF)
            insn = _adr(insn, pages >> 12, check=t == R_AARCH64_ADR_PREL_PG_HI21)
        elif t == R_AARCH64_ADR_GOT_PAGE:
            slot = self.base + self.p.got[(rel.sym, a)]
            insn = _adr(insn, ((slot & ~0xFFF) - (place & ~0xFFF)) >> 12, check=True)
        elif t == R_AARCH64_LD64_GOT_LO12_NC:
            slot = self.base + self.p.got[(rel.sym, a)]
            insn = _imm12(insn, (slot & 0xFFF) >> 3)
        elif t in _A64_LDST_SHIFT:
            shift = _A64_LDST_SHIFT[t]
            lo = (self.sym_addr(sym) + a) & 0xFFF
            if lo & ((1 << shift) - 1):
                raise _Overflow(f"low 12 bits {lo:#x} not aligned to {1 << shift}")
            insn = _imm12(insn, lo >> shift)
        else:
            raise ObjectFileError(
                f"unsupported AArch64 relocation type {t} at "
                f"{self.obj.sections[rel.target].name}+{rel.offset:#x}",
                offset=rel.file_offset,
            )
        return insn.to_bytes(4, "little")


class _Overflow(Exception):
    pass


def _s32(value: int, what: str) -> bytes:
    if not -(1 << 31) <= value < (1 << 31):
        raise _Overflow(f"{what} displacement {value:#x} exceeds +-2 GiB")
    return (value & 0xFFFFFFFF).to_bytes(4, "little")


def _check_signed(delta: int, bits: int, what: str) -> None:
    if delta & 3 or not -(1 << (bits - 1)) <= delta < (1 << (bits - 1)):
        raise _Overflow(f"{what} displacement {delta:#x} out of range or misaligned")


def _adr(insn: int, imm: int, *, check: bool) -> int:
    if check and not -(1 << 20) <= imm < (1 << 20):
        raise _Overflow(f"ADR/ADRP immediate {imm:#x} out of range")
    imm &= 0x1FFFFF
    insn &= ~((0x3 << 29) | (0x7FFFF << 5))
    return insn | ((imm & 3) << 29) | ((imm >> 2) << 5)


def _imm12(insn: int, value: int) -> int:
    return (insn & ~(0xFFF << 10)) | ((value & 0xFFF) << 10)
