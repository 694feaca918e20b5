"""Disassembler: ModuleImage (or VerifiedProgram) -> assembly text that assembles
back to the same image (code, entry, exports, imports, memory, segments, debug lines).

Words that do not decode to an instruction the assembler would write identically
(invalid opcodes or registers, non-canonical field duplicates or ``LD`` forms,
branches to a pc that is not an instruction start) are listed as ``WORD`` lines with
a comment saying why, so even unverifiable CODE lists and round-trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from zjit.encoding import bytes_to_words, ld_ext_count, ld_words, pack
from zjit.errors import VerifyError
from zjit.image import ModuleImage, SegmentDesc
from zjit.isa import BY_OPCODE, COND_NAMES, NUM_REGS, REG_NAMES, Fmt, OpInfo, sext

from .assembler import primitives_used
from .datalayout import MAX_ADDRESS
from .parser import is_register
from .syntax import LAYOUTS, Kind, Src

_IDENT = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*\Z")
_GENERATED = re.compile(r"L_[0-9a-f]+\Z")
_COMMENT_COL = 40
_INDENT = " " * 8


@dataclass
class _Line:
    """One listing line covering ``nwords`` words from ``pc``."""

    pc: int
    nwords: int
    op: OpInfo | None = None            # None = raw WORD line
    slots: dict[tuple[int, str], int] = field(default_factory=dict)
    why: str = ""                       # reason a line is raw


def _slot_values(op: OpInfo, word: int) -> dict[tuple[int, str], int] | None:
    """Operand values read back through the format's layout, or None when the word is
    not exactly what the assembler would write for them."""
    layout = LAYOUTS[op.fmt]
    fields = {"rd": (word >> 20) & 0xF, "rs1": (word >> 16) & 0xF, "rs2": (word >> 12) & 0xF,
              "imm": sext(word & 0xFFF, 12)}
    slots: dict[tuple[int, str], int] = {}
    for fname in ("rd", "rs1", "rs2", "imm"):
        src: Src | None = getattr(layout, fname)
        if src is not None:
            slots.setdefault((src.index, src.part), fields[fname])
    for i, kind in enumerate(layout.operands):
        if kind is Kind.REG and not 0 <= slots[(i, "")] < NUM_REGS:
            return None
        if kind is Kind.MEM and not 0 <= slots[(i, "base")] < NUM_REGS:
            return None
        if kind is Kind.COND and not 0 <= slots[(i, "")] < len(COND_NAMES):
            return None
        if kind is Kind.COUNT and not 0 <= slots[(i, "")] < op.width:
            return None

    def get(src: Src | None) -> int:
        return 0 if src is None else slots[(src.index, src.part)]

    again = pack(op.opcode, get(layout.rd), get(layout.rs1), get(layout.rs2), get(layout.imm))
    return slots if again == word else None


def _decode(words: tuple[int, ...]) -> list[_Line]:
    lines: list[_Line] = []
    i = 0
    while i < len(words):
        w = words[i]
        pc = 4 * i
        op = BY_OPCODE[w >> 24]
        if op is None:
            lines.append(_Line(pc, 1, why=f"invalid opcode {w >> 24:#04x}"))
            i += 1
            continue
        if op.fmt is Fmt.LDI:
            n = 1 + ld_ext_count(sext(w & 0xFFF, 12))
            if i + n > len(words):
                lines.append(_Line(pc, 1, why="LD extension words run past the end of CODE"))
                i += 1
                continue
            rd = (w >> 20) & 0xF
            group = list(words[i:i + n])
            if n == 1:
                value = sext(w & 0xFFF, 12)
            elif n == 2:
                value = sext(group[1], 32)
            else:
                value = sext(group[1] | group[2] << 32, 64)
            if rd < NUM_REGS and ld_words(rd, value, op.opcode) == group:
                lines.append(_Line(pc, n, op, {(0, ""): rd, (1, ""): value}))
            else:
                for k in range(n):
                    lines.append(_Line(pc + 4 * k, 1, why="LD in a non-canonical form" if k == 0
                                       else "LD extension word"))
            i += n
            continue
        slots = _slot_values(op, w)
        if slots is None:
            lines.append(_Line(pc, 1, why=f"{op.mnemonic} with fields the assembler would not write"))
        else:
            lines.append(_Line(pc, 1, op, slots))
        i += 1
    return lines


def _split_at(lines: list[_Line], pcs: set[int]) -> list[_Line]:
    """Turn multi-word lines containing one of ``pcs`` past their start into raw words."""
    out: list[_Line] = []
    for ln in lines:
        if ln.nwords > 1 and any(ln.pc + 4 * k in pcs for k in range(1, ln.nwords)):
            for k in range(ln.nwords):
                out.append(_Line(ln.pc + 4 * k, 1, why="LD split: a label points inside it"))
        else:
            out.append(ln)
    return out


def _fmt_value(v: int) -> str:
    if -4096 < v < 4096:
        return str(v)
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def _safe_label(name: str) -> bool:
    return bool(_IDENT.match(name)) and not is_register(name) and not _GENERATED.match(name) \
        and name.upper() != "NONE"


def _quote(data: bytes) -> str:
    out = []
    for b in data:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def _db_lines(data: bytes, base: int) -> list[str]:
    """DB/RESB lines for ``data`` placed at ``base`` (address comments included)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == 0:
            j += 1
        if j - i >= 32:
            out.append(_with_comment(f"{_INDENT}RESB {j - i}", f"{base + i:#06x}"))
            i = j
            continue
        chunk_end = min(i + 16, len(data))
        # stop a chunk early where a long zero run begins
        z = i
        while z < chunk_end:
            k = z
            while k < len(data) and data[k] == 0:
                k += 1
            if k - z >= 32 and z > i:
                chunk_end = z
                break
            z = k + 1 if k == z else k
        chunk = data[i:chunk_end]
        parts: list[str] = []
        k = 0
        while k < len(chunk):
            m = k
            while m < len(chunk) and 0x20 <= chunk[m] < 0x7F:
                m += 1
            if m - k >= 3:
                parts.append(_quote(chunk[k:m]))
                k = m
            else:
                parts.append(str(chunk[k]))
                k += 1
        out.append(_with_comment(f"{_INDENT}DB {', '.join(parts)}", f"{base + i:#06x}"))
        i = chunk_end
    return out


def _with_comment(text: str, comment: str) -> str:
    return f"{text.ljust(_COMMENT_COL - 1)} ; {comment}"


class _Lister:
    def __init__(self, image: ModuleImage) -> None:
        self.image = image
        self.notes: list[str] = []
        code = image.code
        if len(code) % 4:
            raise VerifyError("CODE_ALIGN", f"CODE length {len(code)} is not a multiple of 4; "
                              "it cannot be listed", offset=image.code_offset + len(code) - len(code) % 4)
        self.words = bytes_to_words(code)
        self.code_len = len(code)
        lines = _decode(self.words)
        refs = {image.entry_pc, *image.exports.values()}
        for name, pc in [("entry", image.entry_pc), *image.exports.items()]:
            if not 0 <= pc <= self.code_len or pc % 4:
                code_name = "BAD_ENTRY" if name == "entry" else "BAD_EXPORT"
                raise VerifyError(code_name, f"{name} pc {pc:#x} lies outside CODE or is not word "
                                  "aligned; it cannot be listed", pc=pc)
        targets = {ln.pc + 4 * ln.slots[(_target_slot(ln.op), "")] for ln in lines
                   if ln.op is not None and ln.op.fmt in (Fmt.CALL, Fmt.JR)}
        lines = _split_at(lines, refs | targets)
        starts = {ln.pc for ln in lines} | {self.code_len}
        for ln in lines:
            if ln.op is not None and ln.op.fmt in (Fmt.CALL, Fmt.JR):
                t = ln.pc + 4 * ln.slots[(_target_slot(ln.op), "")]
                if t not in starts:
                    ln.op, ln.why = None, f"target {t:#x} is outside CODE"
        self.lines = lines
        self.labels = self._labels()

    def _labels(self) -> dict[int, list[str]]:
        labels: dict[int, list[str]] = {}
        used: set[str] = set()
        self.export_names: dict[str, str] = {}
        for name, pc in self.image.exports.items():
            if _safe_label(name) and name not in used:
                labels.setdefault(pc, []).append(name)
                used.add(name)
                self.export_names[name] = name
        needed = {self.image.entry_pc, *self.image.exports.values()}
        for ln in self.lines:
            if ln.op is not None and ln.op.fmt in (Fmt.CALL, Fmt.JR):
                needed.add(ln.pc + 4 * ln.slots[(_target_slot(ln.op), "")])
        width = max(4, len(f"{self.code_len:x}"))
        for pc in sorted(needed):
            if pc not in labels:
                labels[pc] = [f"L_{pc:0{width}x}"]
        for name, pc in self.image.exports.items():
            self.export_names.setdefault(name, labels[pc][0])
        return labels

    def label(self, pc: int) -> str:
        return self.labels[pc][0]

    def operand_text(self, ln: _Line) -> str:
        op = ln.op
        assert op is not None
        layout = LAYOUTS[op.fmt]
        parts: list[str] = []
        for i, kind in enumerate(layout.operands):
            if kind is Kind.REG:
                parts.append(REG_NAMES[ln.slots[(i, "")]])
            elif kind is Kind.MEM:
                base, disp = REG_NAMES[ln.slots[(i, "base")]], ln.slots[(i, "disp")]
                parts.append(f"({base})" if disp == 0 else f"({base}{disp:+d})")
            elif kind is Kind.COND:
                cond = ln.slots[(i, "")]
                if cond:
                    parts.append(COND_NAMES[cond])
            elif kind is Kind.TARGET:
                parts.append(self.label(ln.pc + 4 * ln.slots[(i, "")]))
            elif kind is Kind.VALUE:
                parts.append(_fmt_value(ln.slots[(i, "")]))
            else:
                parts.append(str(ln.slots[(i, "")]))
        return f"{op.mnemonic} {', '.join(parts)}".rstrip()

    def header(self) -> list[str]:
        img = self.image
        n_instr = sum(1 for ln in self.lines if ln.op is not None)
        out = [f"; zjit disassembly of {img.name!r}: {len(self.words)} words, {n_instr} instructions"]
        for name in img.exports:
            label = self.export_names[name]
            if label == name:
                out.append(f"{_INDENT}PUBLIC {name}")
            else:
                out.append(f"{_INDENT}PUBLIC {_quote(name.encode('utf-8'))}, {label}")
        if img.entry_pc != img.exports.get("main", 0):
            out.append(f"{_INDENT}ENTRY {self.label(img.entry_pc)}")
        if img.imports != primitives_used(list(self.words)):
            out.append(f"{_INDENT}IMPORTS " + ("NONE" if img.imports is None else f"{img.imports:#x}"))
        if img.mem_min is not None:
            out.append(f"{_INDENT}MEMORY {img.mem_min}" +
                       ("" if img.mem_max is None else f", {img.mem_max}"))
        elif img.mem_max is not None:
            self.notes.append(f"a maximum memory size ({img.mem_max}) without a minimum is not kept")
        if not img.debug:
            out.append(f"{_INDENT}DEBUG NONE")
        return out

    def data(self) -> list[str]:
        out: list[str] = []
        anon = 0
        prev_anon_end: int | None = None
        for seg in self.image.segments:
            if seg.base + seg.size > MAX_ADDRESS or seg.base < 0:
                self.notes.append(f"segment {seg.name!r} lies outside the 32-bit address space")
                prev_anon_end = None
                continue
            simple = (seg.name == f"data.{anon}" and seg.perms == "rw" and seg.init is not None
                      and len(seg.init) == seg.size > 0 and seg.base != prev_anon_end)
            out.append(f"{_INDENT}ORG {seg.base:#x}")
            if simple:
                assert seg.init is not None
                out.extend(_db_lines(seg.init, seg.base))
                anon += 1
                prev_anon_end = seg.end
                continue
            out.extend(self.explicit_segment(seg))
            prev_anon_end = None
        return out

    def explicit_segment(self, seg: SegmentDesc) -> list[str]:
        name = _quote(seg.name.encode("utf-8"))
        out = [f'{_INDENT}SEGMENT {name}, "{seg.perms}", {seg.size}']
        if seg.init:
            out.extend(_db_lines(seg.init, seg.base))
        elif seg.init is not None:
            self.notes.append(f"segment {seg.name!r}: empty initial bytes are listed as zero-filled")
        out.append(f"{_INDENT}ENDS")
        return out

    def code(self) -> list[str]:
        out: list[str] = []
        debug = self.image.debug
        for ln in self.lines:
            for name in self.labels.get(ln.pc, []):
                out.append(f"{name}:")
            words = " ".join(f"{w:08x}" for w in self.words[ln.pc // 4: ln.pc // 4 + ln.nwords])
            comment = f"{ln.pc:04x}  {words}"
            where = debug.get(ln.pc)
            if where is not None:
                comment += f"  {where.source}:{where.line}"
            if ln.op is None:
                text = f"{_INDENT}WORD {self.words[ln.pc // 4]:#010x}"
                comment += f"  ({ln.why})"
            else:
                text = _INDENT + self.operand_text(ln)
            out.append(_with_comment(text, comment))
        for name in self.labels.get(self.code_len, []):
            out.append(f"{name}:")
        return out

    def debug_table(self) -> list[str]:
        debug = self.image.debug
        if not debug:
            return []
        out = ["", "; source lines of the original (kept so reassembly gives the same debug table)"]
        for pc in sorted(debug):
            d = debug[pc]
            out.append(f"{_INDENT}DEBUG {pc:#06x}, {d.line}, {_quote(d.source.encode('utf-8'))}")
        return out

    def render(self) -> str:
        head = self.header()
        data = self.data()
        code = self.code()
        tail = self.debug_table()
        notes = [f"; note: {n}" for n in self.notes]
        parts = head + notes
        if data:
            parts += ["", "; data"] + data
        parts += ["", "; code"] + code + tail
        return "\n".join(parts) + "\n"


def _target_slot(op: OpInfo | None) -> int:
    assert op is not None
    return 0 if op.fmt is Fmt.CALL else 1


def disassemble(obj: ModuleImage | Any) -> str:
    """List a :class:`ModuleImage` (or a VerifiedProgram, via its ``image``) as
    assembly text; assembling the text gives back an equal image (ModuleImage
    ``name``, ``source_format`` and ``code_offset`` aside). Raises VerifyError when
    CODE is not a whole number of words or the entry/an export is outside CODE."""
    image = obj if isinstance(obj, ModuleImage) else getattr(obj, "image", None)
    if not isinstance(image, ModuleImage):
        raise TypeError("disassemble() takes a ModuleImage or a VerifiedProgram")
    return _Lister(image).render()


__all__ = ["disassemble"]
