"""Two-pass (iterated) assembler: ZASM text -> :class:`~zjit.image.ModuleImage`.

Layout passes repeat until every symbol value is stable (an ``LD`` of a forward
label may change size once its value is known); a final strict pass then encodes
words, data segments, exports, entry, imports and debug lines.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from zjit.encoding import ld_ext_count, ld_words, pack, words_to_bytes
from zjit.errors import AsmError
from zjit.image import DebugLine, ModuleImage, SegmentDesc
from zjit.isa import BY_OPCODE, COND_INDEX, LD_IMM32, MASK64, Fmt, OpInfo

from .compat import COND_ALIASES, reference_form
from .parser import (
    DATA_DIRECTIVES,
    Expr,
    ExprOperand,
    MemOperand,
    Operand,
    RegOperand,
    Statement,
    StrOperand,
    is_register,
    parse,
)
from .syntax import LAYOUTS, Kind, Src, usage

DATA_START = 0x1000
"""The data location counter's initial value."""
MAX_ADDRESS = 1 << 32
"""Data addresses (and segment ends) must stay below 2^32 (container fields are u32)."""
MAX_DATA_BYTES = 256 << 20
"""Upper bound on the total initialised data an assembly may produce."""
MAX_PASSES = 32

_DATA_WIDTH = {"DB": 1, "DW": 2, "DD": 4, "DQ": 8}
_DATA_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


@dataclass(slots=True)
class Symbol:
    """A label or EQU constant: ``kind`` is ``"code"``, ``"data"`` or ``"const"``."""

    kind: str
    value: int
    line: int


@dataclass(slots=True)
class _Seg:
    name: str | None          # None = anonymous run (named data.N at the end)
    base: int
    line: int
    perms: str = "rw"
    declared_size: int | None = None
    data: bytearray = field(default_factory=bytearray)
    length: int = 0           # bytes placed (tracked even when data is not built)
    size: int = 0


@dataclass(slots=True)
class _Export:
    name: str
    label: ExprOperand
    line: int


class _Pass:
    """One walk over the statements; ``strict`` is the final, emitting pass."""

    def __init__(self, stmts: list[Statement], prev: dict[str, Symbol], strict: bool,
                 path: str) -> None:
        self.stmts = stmts
        self.prev = prev
        self.strict = strict
        self.path = path
        self.symbols: dict[str, Symbol] = {}
        self.words: list[int] = []
        self.debug: dict[int, DebugLine] = {}
        self.loc = DATA_START
        self.segs: list[_Seg] = []
        self.run: _Seg | None = None        # open anonymous run
        self.explicit: _Seg | None = None   # open SEGMENT ... ENDS
        self.exports: list[_Export] = []
        self.entry: tuple[ExprOperand, int] | None = None
        self.memory: tuple[int, int | None] | None = None
        self.imports: tuple[int | None, int] | None = None
        self.data_total = 0
        self.explicit_debug: dict[int, DebugLine] | None = None

    # -- errors and symbols ---------------------------------------------------
    def err(self, code: str, msg: str, line: int) -> AsmError:
        return AsmError(code, msg, line=line, path=self.path)

    def define(self, name: str, kind: str, value: int, line: int) -> None:
        if is_register(name):
            raise self.err("ASM_LABEL", f"{name!r} is a register name and cannot be a symbol", line)
        old = self.symbols.get(name)
        if old is not None:
            raise self.err("ASM_LABEL", f"duplicate symbol {name!r} (first defined on line {old.line})",
                           line)
        self.symbols[name] = Symbol(kind, value, line)

    def lookup(self, name: str, line: int) -> Symbol | None:
        sym = self.symbols.get(name) or self.prev.get(name)
        if sym is None and self.strict:
            raise self.err("ASM_LABEL", f"undefined symbol {name!r}", line)
        return sym

    def eval(self, operand: ExprOperand, line: int) -> int:
        total = 0
        for sign, term in operand.expr.terms:
            if isinstance(term, int):
                total += sign * term
            else:
                sym = self.lookup(term, line)
                total += sign * (sym.value if sym is not None else 0)
        return total

    def check_range(self, value: int, lo: int, hi: int, what: str, line: int) -> int:
        if self.strict and not lo <= value <= hi:
            raise self.err("ASM_RANGE", f"{what} {value} out of range {lo}..{hi}", line)
        return value

    def expr_operand(self, operand: Operand, what: str, line: int) -> ExprOperand:
        if not isinstance(operand, ExprOperand):
            raise self.err("ASM_SYNTAX", f"{what} must be a number or symbol, got {operand.text!r}",
                           line)
        return operand

    # -- the walk --------------------------------------------------------------
    def run_all(self) -> None:
        pending: list[tuple[str, int]] = []
        for st in self.stmts:
            if st.kind == "equ":
                operand = st.operands[0]
                assert isinstance(operand, ExprOperand)
                self.define(st.name, "const", self.eval(operand, st.line), st.line)
                continue
            labels = pending + [(name, st.line) for name in st.labels]
            if st.kind == "instr" or (st.kind == "directive" and st.name == "WORD"):
                for name, line in labels:
                    self.define(name, "code", 4 * len(self.words), line)
                pending = []
                if st.kind == "instr":
                    assert st.op is not None
                    self.instruction(st, st.op)
                else:
                    self.word_directive(st)
            elif st.kind == "directive" and st.name in DATA_DIRECTIVES:
                for name, line in labels:
                    self.define(name, "data", self.loc, line)
                pending = []
                self.data_directive(st)
            else:
                pending = labels
                if st.kind == "directive":
                    self.other_directive(st)
        for name, line in pending:
            self.define(name, "code", 4 * len(self.words), line)
        if self.explicit is not None:
            raise self.err("ASM_SYNTAX", f"SEGMENT {self.explicit.name!r} is never closed with ENDS",
                           self.explicit.line)

    # -- instructions -------------------------------------------------------------
    def instruction(self, st: Statement, op: OpInfo) -> None:
        op, operands = reference_form(op, st.operands,
                                      lambda name: name in self.symbols or name in self.prev)
        if not self.strict and op.fmt is not Fmt.LDI:
            self.words.append(0)  # layout pass: only LD has a value-dependent size
            return
        layout = LAYOUTS[op.fmt]
        if op.fmt is Fmt.JR and len(operands) == 1:
            operands = (ExprOperand(_AL, "al"),) + operands
        if len(operands) != len(layout.operands):
            raise self.err("ASM_SYNTAX", f"{op.mnemonic} takes {len(layout.operands)} operand(s) "
                           f"({usage(op.mnemonic, op.fmt)}), got {len(st.operands)}", st.line)
        pc = 4 * len(self.words)
        vals: dict[tuple[int, str], int] = {}
        for i, (kind, operand) in enumerate(zip(layout.operands, operands, strict=True)):
            vals.update(self.operand_value(op, i, kind, operand, pc, st.line))

        def get(src: Src | None) -> int:
            return 0 if src is None else vals[(src.index, src.part)]

        rd, rs1, rs2, imm = get(layout.rd), get(layout.rs1), get(layout.rs2), get(layout.imm)
        if op.fmt is Fmt.LDI:
            words = ld_words(rd, imm, op.opcode)
        else:
            words = [pack(op.opcode, rd, rs1, rs2, imm if self.strict else 0)]
        if self.strict:
            self.debug[pc] = DebugLine(self.path, st.line)
        self.words.extend(words)

    def operand_value(self, op: OpInfo, i: int, kind: Kind, operand: Operand, pc: int,
                      line: int) -> dict[tuple[int, str], int]:
        pos = f"operand {i + 1} of {op.mnemonic}"
        if kind is Kind.REG:
            if not isinstance(operand, RegOperand):
                raise self.err("ASM_SYNTAX", f"{pos} must be a register (HL DE A BC IX), "
                               f"got {operand.text!r}", line)
            return {(i, ""): operand.index}
        if kind is Kind.MEM:
            if not isinstance(operand, MemOperand):
                raise self.err("ASM_SYNTAX", f"{pos} must be a memory operand like (HL+8), "
                               f"got {operand.text!r}", line)
            disp = self.check_range(self.eval(ExprOperand(operand.disp, operand.disp.text), line),
                                    -2048, 2047, f"displacement in {operand.text!r}:", line)
            return {(i, "base"): operand.base, (i, "disp"): disp}
        if kind is Kind.COND:
            name = operand.expr.symbol if isinstance(operand, ExprOperand) else None
            cond = COND_ALIASES.get(name.lower(), name.lower()) if name is not None else ""
            if cond not in COND_INDEX:
                raise self.err("ASM_SYNTAX", f"unknown condition {operand.text!r} "
                               f"(use one of {', '.join(COND_INDEX)})", line)
            return {(i, ""): COND_INDEX[cond]}
        expr = self.expr_operand(operand, pos, line)
        if kind is Kind.TARGET:
            return {(i, ""): self.displacement(expr, pc, op, line)}
        value = self.eval(expr, line)
        if kind is Kind.IMM:
            value = self.check_range(value, -2048, 2047, f"immediate {expr.text!r} =", line)
        elif kind is Kind.COUNT:
            value = self.check_range(value, 0, op.width - 1,
                                     f"{op.mnemonic} shift count {expr.text!r} =", line)
        else:
            value = self.check_range(value, -(1 << 63), MASK64, f"LD value {expr.text!r} =", line)
        return {(i, ""): value}

    def displacement(self, expr: ExprOperand, pc: int, op: OpInfo, line: int) -> int:
        name = expr.expr.symbol
        if name is not None:
            sym = self.lookup(name, line)
            if sym is not None and sym.kind != "code" and self.strict:
                raise self.err("ASM_LABEL", f"{op.mnemonic} target {name!r} is a {sym.kind} symbol, "
                               "not a code label", line)
        target = self.eval(expr, line)
        if not self.strict:
            return 0
        if target % 4:
            raise self.err("ASM_RANGE", f"{op.mnemonic} target {expr.text!r} = {target:#x} is not "
                           "word aligned", line)
        disp = (target - pc) // 4
        if not -2048 <= disp <= 2047:
            raise self.err("ASM_RANGE", f"{op.mnemonic} target {expr.text!r} is {disp} words away "
                           "(range -2048..2047)", line)
        return disp

    def word_directive(self, st: Statement) -> None:
        if not st.operands:
            raise self.err("ASM_SYNTAX", "WORD needs at least one value", st.line)
        for operand in st.operands:
            expr = self.expr_operand(operand, "WORD value", st.line)
            value = self.check_range(self.eval(expr, st.line), -(1 << 31), 0xFFFF_FFFF,
                                     f"WORD value {expr.text!r} =", st.line)
            if self.strict:
                self.debug[4 * len(self.words)] = DebugLine(self.path, st.line)
            self.words.append(value & 0xFFFF_FFFF)

    # -- data ---------------------------------------------------------------------
    def place(self, data: bytes | int, line: int) -> None:
        """Place bytes (or, in layout passes, a count of bytes) at the location counter."""
        count = data if isinstance(data, int) else len(data)
        if count <= 0:
            return
        seg = self.explicit
        if seg is None:
            run = self.run
            if run is None or run.base + run.length != self.loc:
                run = _Seg(None, self.loc, line)
                self.segs.append(run)
                self.run = run
            seg = run
        if self.strict:
            if self.loc + count > MAX_ADDRESS:
                raise self.err("ASM_RANGE", f"data at {self.loc:#x}..{self.loc + count:#x} goes past "
                               "the 4 GiB address limit", line)
            self.data_total += count
            if self.data_total > MAX_DATA_BYTES:
                raise self.err("ASM_RANGE", f"more than {MAX_DATA_BYTES} bytes of data", line)
            seg.data += data if isinstance(data, bytes) else bytes(count)
        seg.length += count
        self.loc += count

    def data_directive(self, st: Statement) -> None:
        name, line = st.name, st.line
        if name in _DATA_WIDTH:
            if not st.operands:
                raise self.err("ASM_SYNTAX", f"{name} needs at least one value", line)
            width = _DATA_WIDTH[name]
            lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
            for operand in st.operands:
                if isinstance(operand, StrOperand):
                    if name != "DB":
                        raise self.err("ASM_SYNTAX", f"strings are only allowed in DB, not {name}", line)
                    self.place(operand.data if self.strict else len(operand.data), line)
                    continue
                expr = self.expr_operand(operand, f"{name} value", line)
                value = self.check_range(self.eval(expr, line), lo, hi, f"{name} value {expr.text!r} =",
                                         line)
                if self.strict:
                    self.place(struct.pack(_DATA_FMT[width], value & hi), line)
                else:
                    self.place(width, line)
            return
        count = self.single_value(st)
        if name == "RESB":
            count = self.check_range(count, 0, MAX_DATA_BYTES, "RESB count", line)
        else:  # ALIGN
            if self.strict and (count < 1 or count > 1 << 16 or count & (count - 1)):
                raise self.err("ASM_RANGE", f"ALIGN {count} must be a power of two 1..65536", line)
            count = (-self.loc) % count if count > 0 else 0
        self.place(max(count, 0), line)

    def single_value(self, st: Statement) -> int:
        if len(st.operands) != 1:
            raise self.err("ASM_SYNTAX", f"{st.name} takes one value, got {len(st.operands)}", st.line)
        return self.eval(self.expr_operand(st.operands[0], f"{st.name} value", st.line), st.line)

    # -- other directives ---------------------------------------------------------
    def other_directive(self, st: Statement) -> None:
        name, line, ops = st.name, st.line, st.operands
        if name == "ORG":
            if self.explicit is not None:
                raise self.err("ASM_SYNTAX", "ORG inside SEGMENT ... ENDS", line)
            self.loc = self.check_range(self.single_value(st), 0, MAX_ADDRESS - 1, "ORG address", line)
        elif name == "PUBLIC":
            self.public(st)
        elif name == "ENTRY":
            if len(ops) != 1 or not isinstance(ops[0], ExprOperand):
                raise self.err("ASM_SYNTAX", "ENTRY takes one code label", line)
            if self.entry is not None:
                raise self.err("ASM_SYNTAX", f"ENTRY given twice (first on line {self.entry[1]})", line)
            self.entry = (ops[0], line)
        elif name == "MEMORY":
            if not 1 <= len(ops) <= 2:
                raise self.err("ASM_SYNTAX", "MEMORY takes min_bytes [, max_bytes]", line)
            if self.memory is not None:
                raise self.err("ASM_SYNTAX", "MEMORY given twice", line)
            vals = [self.check_range(self.eval(self.expr_operand(o, "MEMORY value", line), line),
                                     0, 0xFFFF_FFFF, "MEMORY value", line) for o in ops]
            self.memory = (vals[0], vals[1] if len(vals) == 2 else None)
        elif name == "IMPORTS":
            if self.imports is not None:
                raise self.err("ASM_SYNTAX", "IMPORTS given twice", line)
            if len(ops) != 1:
                raise self.err("ASM_SYNTAX", "IMPORTS takes NONE or one mask value", line)
            op0 = self.expr_operand(ops[0], "IMPORTS value", line)
            if op0.expr.symbol is not None and op0.expr.symbol.upper() == "NONE":
                self.imports = (None, line)
            else:
                mask = self.check_range(self.eval(op0, line), 0, 0xFFFF_FFFF, "IMPORTS mask", line)
                self.imports = (mask, line)
        elif name == "DEBUG":
            self.debug_directive(st)
        elif name == "SEGMENT":
            self.segment(st)
        elif name == "ENDS":
            seg = self.explicit
            if seg is None:
                raise self.err("ASM_SYNTAX", "ENDS without SEGMENT", line)
            if ops:
                raise self.err("ASM_SYNTAX", "ENDS takes no operands", line)
            size = seg.length if seg.declared_size is None else seg.declared_size
            if self.strict and size < seg.length:
                raise self.err("ASM_RANGE", f"SEGMENT {seg.name!r} holds {seg.length} bytes, more than "
                               f"its declared size {size}", line)
            seg.size = max(size, seg.length)
            self.loc = seg.base + seg.size
            self.explicit = None

    def debug_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.explicit_debug is None:
            self.explicit_debug = {}
        if len(ops) == 1 and isinstance(ops[0], ExprOperand) and ops[0].expr.symbol is not None \
                and ops[0].expr.symbol.upper() == "NONE":
            return
        if not 2 <= len(ops) <= 3:
            raise self.err("ASM_SYNTAX", 'DEBUG takes NONE or pc, line [, "source"]', line)
        pc = self.check_range(self.eval(self.expr_operand(ops[0], "DEBUG pc", line), line),
                              0, 0xFFFF_FFFF, "DEBUG pc", line)
        src_line = self.check_range(self.eval(self.expr_operand(ops[1], "DEBUG line", line), line),
                                    0, 0xFFFF_FFFF, "DEBUG line", line)
        source = self.path
        if len(ops) == 3:
            if not isinstance(ops[2], StrOperand):
                raise self.err("ASM_SYNTAX", f"DEBUG source must be a string, got {ops[2].text!r}", line)
            source = _word_or_string(ops[2]) or ""
        if self.strict:
            if pc in self.explicit_debug:
                raise self.err("ASM_SYNTAX", f"DEBUG entry for pc {pc:#x} given twice", line)
            self.explicit_debug[pc] = DebugLine(source, src_line)

    def public(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if not ops:
            raise self.err("ASM_SYNTAX", "PUBLIC needs a label", line)
        if isinstance(ops[0], StrOperand):
            if len(ops) != 2 or not isinstance(ops[1], ExprOperand):
                raise self.err("ASM_SYNTAX", 'PUBLIC "name", label takes exactly a string and a label',
                               line)
            try:
                export = ops[0].data.decode("utf-8")
            except UnicodeDecodeError:
                raise self.err("ASM_SYNTAX", f"export name {ops[0].text} is not UTF-8", line) from None
            if not export:
                raise self.err("ASM_SYNTAX", "export name is empty", line)
            self.exports.append(_Export(export, ops[1], line))
            return
        for operand in ops:
            expr = self.expr_operand(operand, "PUBLIC operand", line)
            if expr.expr.symbol is None:
                raise self.err("ASM_SYNTAX", f"PUBLIC expects label names, got {operand.text!r}", line)
            self.exports.append(_Export(expr.expr.symbol, expr, line))

    def segment(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.explicit is not None:
            raise self.err("ASM_SYNTAX", f"SEGMENT inside SEGMENT {self.explicit.name!r} "
                           f"(line {self.explicit.line}); close it with ENDS", line)
        if not 1 <= len(ops) <= 3:
            raise self.err("ASM_SYNTAX", "SEGMENT takes name [, perms [, size]]", line)
        seg_name = _word_or_string(ops[0])
        if not seg_name:
            raise self.err("ASM_SYNTAX", f"bad segment name {ops[0].text!r}", line)
        perms = "rw"
        if len(ops) >= 2:
            perms = _word_or_string(ops[1]) or ""
            if not perms or any(c not in "rwx" for c in perms) or "r" not in perms \
                    or len(set(perms)) != len(perms):
                raise self.err("ASM_SYNTAX", f"segment permissions {ops[1].text!r} must be letters from "
                               "rwx including r", line)
        size: int | None = None
        if len(ops) == 3:
            size = self.check_range(self.eval(self.expr_operand(ops[2], "segment size", line), line),
                                    0, MAX_ADDRESS, "segment size", line)
        seg = _Seg(seg_name, self.loc, line, perms, size)
        self.segs.append(seg)
        self.explicit = seg
        self.run = None

    # -- results -----------------------------------------------------------------------
    def segments(self) -> tuple[SegmentDesc, ...]:
        out: list[SegmentDesc] = []
        names: dict[str, int] = {}
        anon = 0
        for seg in self.segs:
            if seg.name is None:
                seg.name = f"data.{anon}"
                anon += 1
                seg.size = seg.length
            if seg.name in names:
                raise self.err("ASM_LABEL", f"duplicate segment name {seg.name!r} (first on line "
                               f"{names[seg.name]})", seg.line)
            names[seg.name] = seg.line
            if seg.base + seg.size > MAX_ADDRESS:
                raise self.err("ASM_RANGE", f"segment {seg.name!r} ends past the 4 GiB address limit",
                               seg.line)
        ordered = sorted((s for s in self.segs if s.size > 0), key=lambda s: s.base)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.base < a.base + a.size:
                later = max(a, b, key=lambda s: s.line)
                other = a if later is b else b
                raise self.err("ASM_RANGE", f"data {later.name!r} at {later.base:#x} overlaps "
                               f"{other.name!r} ({other.base:#x}..{other.base + other.size:#x}, line "
                               f"{other.line})", later.line)
        for seg in self.segs:
            assert seg.name is not None
            init = bytes(seg.data) if seg.length else None
            out.append(SegmentDesc(seg.name, seg.base, seg.size, seg.perms, init))
        return tuple(out)

    def code_label(self, operand: ExprOperand, what: str, line: int) -> int:
        name = operand.expr.symbol
        if name is None:
            raise self.err("ASM_SYNTAX", f"{what} expects a label, got {operand.text!r}", line)
        sym = self.lookup(name, line)
        assert sym is not None
        if sym.kind != "code":
            raise self.err("ASM_LABEL", f"{what} {name!r} is a {sym.kind} symbol, not a code label", line)
        return sym.value

    def image(self, name: str) -> ModuleImage:
        code = words_to_bytes(self.words)
        exports: dict[str, int] = {}
        export_lines: dict[str, int] = {}
        for ex in self.exports:
            if ex.name in exports:
                raise self.err("ASM_LABEL", f"{ex.name!r} exported twice (first on line "
                               f"{export_lines[ex.name]})", ex.line)
            exports[ex.name] = self.code_label(ex.label, "PUBLIC", ex.line)
            export_lines[ex.name] = ex.line
        if self.entry is not None:
            entry = self.code_label(self.entry[0], "ENTRY", self.entry[1])
        else:
            entry = exports.get("main", 0)
        imports = primitives_used(self.words) if self.imports is None else self.imports[0]
        mem_min, mem_max = self.memory if self.memory is not None else (None, None)
        return ModuleImage(
            code=code, entry_pc=entry, exports=exports, imports=imports,
            mem_min=mem_min, mem_max=mem_max, segments=self.segments(),
            debug=dict(self.debug) if self.explicit_debug is None else self.explicit_debug,
            source_format="asm", code_offset=0, name=name,
        )


_AL = Expr(((1, "al"),), "al")


def _word_or_string(operand: Operand) -> str | None:
    if isinstance(operand, StrOperand):
        try:
            return operand.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(operand, ExprOperand):
        return operand.expr.symbol
    return None


def primitives_used(words: list[int]) -> int:
    """Mask of primitives in a linear decode of ``words`` (bit i = opcode 0xF0+i)."""
    mask = 0
    i = 0
    while i < len(words):
        opcode = words[i] >> 24
        info = BY_OPCODE[opcode]
        if info is not None and info.is_primitive:
            mask |= 1 << info.prim_bit
        i += 1
        if opcode == 0x70:
            i += ld_ext_count(_imm12(words[i - 1]))
    return mask


def _imm12(word: int) -> int:
    imm = word & 0xFFF
    return imm - 0x1000 if imm & 0x800 else imm


def _check_equ_cycles(stmts: list[Statement], path: str) -> None:
    deps: dict[str, tuple[list[str], int]] = {}
    for st in stmts:
        if st.kind == "equ":
            operand = st.operands[0]
            assert isinstance(operand, ExprOperand)
            names = [t for _, t in operand.expr.terms if isinstance(t, str)]
            deps.setdefault(st.name, (names, st.line))
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2 or name not in deps:
            return
        if state.get(name) == 1:
            cycle = chain[chain.index(name):] + [name]
            raise AsmError("ASM_LABEL", f"EQU cycle {' -> '.join(cycle)}", line=deps[name][1], path=path)
        state[name] = 1
        for dep in deps[name][0]:
            visit(dep, chain + [name])
        state[name] = 2

    for name in deps:
        visit(name, [])


def _image_name(name: str) -> str:
    base = os.path.basename(name) or name
    for ext in (".s", ".asm", ".zasm"):
        if base.lower().endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base


def assemble(text: str, name: str = "module") -> ModuleImage:
    """Assemble ZASM text into a :class:`ModuleImage`.

    ``name`` is the source name used in debug lines and error locations; the
    image is named after it without directories or a ``.s``/``.asm`` suffix.
    Raises :class:`~zjit.errors.AsmError` (``ASM_SYNTAX``, ``ASM_RANGE``,
    ``ASM_LABEL``) with the line at fault.
    """
    stmts = parse(text, name)
    _check_equ_cycles(stmts, name)
    prev: dict[str, Symbol] = {}
    for _ in range(MAX_PASSES):
        layout = _Pass(stmts, prev, strict=False, path=name)
        layout.run_all()
        values = {k: (s.kind, s.value) for k, s in layout.symbols.items()}
        if values == {k: (s.kind, s.value) for k, s in prev.items()}:
            break
        prev = layout.symbols
    else:
        raise AsmError("ASM_RANGE", "symbol values do not settle (LD sizes keep changing)", line=1,
                       path=name)
    final = _Pass(stmts, prev, strict=True, path=name)
    final.run_all()
    return final.image(_image_name(name))


__all__ = ["DATA_START", "LD_IMM32", "Symbol", "assemble", "primitives_used"]
