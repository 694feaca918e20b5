"""A small, bounded ELF64 little-endian relocatable-object parser (``struct`` based).

It reads exactly what the linker (:mod:`zjit.backends.objfile.linker`) needs from the
objects LLVM emits: section headers and contents, the symbol table and the
``SHT_RELA`` relocation sections. Every offset and size is checked against the
input, so a damaged object raises :class:`ObjectFileError` (code
``COMPILE_FAILED``, with the byte offset) and never reads out of bounds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from zjit.errors import PolicyError

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_REL = 1

SHT_NULL = 0
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
SHT_INIT_ARRAY = 14
SHT_FINI_ARRAY = 15
SHT_PREINIT_ARRAY = 16
SHT_GROUP = 17
SHT_SYMTAB_SHNDX = 18

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_TLS = 0x400

SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STT_TLS = 6

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")

MAX_SECTIONS = 1 << 16
MAX_OBJECT_BYTES = 1 << 30


class ObjectFileError(PolicyError):
    """An object file cannot be parsed, linked or loaded (code ``COMPILE_FAILED``)."""

    def __init__(self, message: str, *, offset: int | None = None, path: str | None = None) -> None:
        super().__init__("COMPILE_FAILED", message, offset=offset, path=path)


@dataclass(frozen=True, slots=True)
class Section:
    """One section header plus its contents (empty for NOBITS)."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entsize: int
    data: bytes

    @property
    def alloc(self) -> bool:
        """True when the section occupies memory at run time."""
        return bool(self.flags & SHF_ALLOC)


@dataclass(frozen=True, slots=True)
class Symbol:
    """One symbol table entry."""

    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int

    @property
    def defined(self) -> bool:
        """True when the symbol lives in a section of this object (or is absolute)."""
        return self.shndx != SHN_UNDEF and self.shndx != SHN_COMMON


@dataclass(frozen=True, slots=True)
class Relocation:
    """One ``Elf64_Rela`` entry, applied to section ``target``."""

    offset: int
    sym: int
    type: int
    addend: int
    target: int
    file_offset: int


@dataclass(frozen=True)
class ElfObject:
    """A parsed relocatable object."""

    machine: int
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    relocations: tuple[Relocation, ...]
    """Every RELA entry whose target section is allocated."""


def _slice(data: bytes, off: int, size: int, what: str) -> bytes:
    if off < 0 or size < 0 or off + size > len(data):
        raise ObjectFileError(f"{what} lies outside the object ({off:#x}+{size:#x})", offset=off)
    return data[off : off + size]


def _cstr(table: bytes, off: int, what: str) -> str:
    if off >= len(table) and off != 0:
        raise ObjectFileError(f"{what} name offset {off:#x} outside its string table")
    end = table.find(b"\0", off)
    if end < 0:
        raise ObjectFileError(f"{what} name is not NUL-terminated")
    return table[off:end].decode("utf-8", "replace")


def parse_elf(data: bytes) -> ElfObject:
    """Parse an ELF64 little-endian relocatable object."""
    if len(data) > MAX_OBJECT_BYTES:
        raise ObjectFileError("object file too large")
    ident = _slice(data, 0, _EHDR.size, "ELF header")
    (e_ident, e_type, e_machine, _ver, _entry, _phoff, e_shoff, _flags, e_ehsize, _phentsize, _phnum,
     e_shentsize, e_shnum, e_shstrndx) = _EHDR.unpack(ident)
    if e_ident[:4] != ELF_MAGIC:
        raise ObjectFileError("not an ELF file", offset=0)
    if e_ident[4] != ELFCLASS64 or e_ident[5] != ELFDATA2LSB:
        raise ObjectFileError("not a little-endian ELF64 object", offset=4)
    if e_type != ET_REL:
        raise ObjectFileError(f"not a relocatable object (e_type {e_type})", offset=16)
    if e_shentsize != _SHDR.size or e_ehsize != _EHDR.size:
        raise ObjectFileError("unexpected ELF header or section header size", offset=58)
    if e_shnum == 0 or e_shnum > MAX_SECTIONS:
        raise ObjectFileError(f"bad section count {e_shnum}", offset=60)
    raw_headers = []
    for i in range(e_shnum):
        off = e_shoff + i * _SHDR.size
        raw_headers.append((off, _SHDR.unpack(_slice(data, off, _SHDR.size, f"section header {i}"))))
    if not 0 <= e_shstrndx < e_shnum:
        raise ObjectFileError("section name table index out of range", offset=62)
    shstr_hdr = raw_headers[e_shstrndx][1]
    shstrtab = _slice(data, shstr_hdr[4], shstr_hdr[5], "section name table")

    sections: list[Section] = []
    for i, (hoff, (name, typ, flags, _addr, off, size, link, info, align, entsize)) in enumerate(raw_headers):
        if typ in (SHT_NOBITS, SHT_NULL):
            content = b""
        else:
            content = _slice(data, off, size, f"section {i} contents")
        if align & (align - 1):
            raise ObjectFileError(f"section {i} alignment {align} is not a power of two", offset=hoff)
        sections.append(
            Section(i, _cstr(shstrtab, name, f"section {i}"), typ, flags, off, size, link, info,
                    max(align, 1), entsize, content)
        )

    symbols = _parse_symbols(sections)
    relocations = _parse_relocations(sections, len(symbols))
    return ElfObject(e_machine, tuple(sections), symbols, relocations)


def _parse_symbols(sections: list[Section]) -> tuple[Symbol, ...]:
    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if not symtabs:
        return ()
    if len(symtabs) > 1:
        raise ObjectFileError("more than one symbol table")
    symtab = symtabs[0]
    if any(s.type == SHT_SYMTAB_SHNDX for s in sections):
        raise ObjectFileError("extended section indexes are not supported")
    if symtab.entsize != _SYM.size or symtab.size % _SYM.size:
        raise ObjectFileError("bad symbol table entry size", offset=symtab.offset)
    if not 0 < symtab.link < len(sections) or sections[symtab.link].type != SHT_STRTAB:
        raise ObjectFileError("symbol table has no string table", offset=symtab.offset)
    strtab = sections[symtab.link].data
    out: list[Symbol] = []
    for i in range(symtab.size // _SYM.size):
        name, info, _other, shndx, value, size = _SYM.unpack_from(symtab.data, i * _SYM.size)
        if shndx != SHN_UNDEF and shndx < SHN_LORESERVE and shndx >= len(sections):
            raise ObjectFileError(f"symbol {i} refers to section {shndx}",
                                  offset=symtab.offset + i * _SYM.size)
        out.append(Symbol(i, _cstr(strtab, name, f"symbol {i}"), value, size, info >> 4, info & 0xF, shndx))
    return tuple(out)


def _parse_relocations(sections: list[Section], nsyms: int) -> tuple[Relocation, ...]:
    out: list[Relocation] = []
    for sec in sections:
        if sec.type == SHT_REL:
            target = sections[sec.info] if 0 < sec.info < len(sections) else None
            if target is not None and target.alloc:
                raise ObjectFileError(f"REL (not RELA) relocations in {sec.name}", offset=sec.offset)
            continue
        if sec.type != SHT_RELA:
            continue
        if not 0 < sec.info < len(sections):
            raise ObjectFileError(f"{sec.name} targets section {sec.info}", offset=sec.offset)
        target = sections[sec.info]
        if not target.alloc:
            continue  # debug info and the like: never loaded
        if sec.entsize != _RELA.size or sec.size % _RELA.size:
            raise ObjectFileError(f"bad RELA entry size in {sec.name}", offset=sec.offset)
        for j in range(sec.size // _RELA.size):
            r_offset, r_info, r_addend = _RELA.unpack_from(sec.data, j * _RELA.size)
            sym, typ = r_info >> 32, r_info & 0xFFFFFFFF
            foff = sec.offset + j * _RELA.size
            if sym >= nsyms:
                raise ObjectFileError(f"relocation refers to symbol {sym}", offset=foff)
            out.append(Relocation(r_offset, sym, typ, r_addend, target.index, foff))
    return tuple(out)
