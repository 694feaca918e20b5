"""One pass of the assembler over the parsed statements.

Layout passes (``strict`` False) only place things, so that every symbol gets a
value; the final strict pass encodes the words, checks every range and collects
every error (one per statement) instead of stopping at the first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zjit.encoding import ld_words, pack
from zjit.errors import AsmError
from zjit.image import DebugLine
from zjit.isa import COND_INDEX, MASK64, Fmt, OpInfo

from .binding import Binding, Held, binding_note
from .compat import COND_ALIASES, lower
from .datalayout import MAX_ADDRESS, MAX_DATA_BYTES, DataLayout
from .hints import close_registers, close_words, did_you_mean
from .parser import (
    DATA_DIRECTIVES,
    PASS_DIRECTIVES,
    Expr,
    ExprOperand,
    MemOperand,
    Operand,
    RegOperand,
    Statement,
    StrOperand,
    is_register,
)
from .syntax import LAYOUTS, Kind, Src, usage

_DATA_WIDTH = {"DB": 1, "DW": 2, "DD": 4, "DQ": 8}
_DATA_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_MOVES_DATA_COUNTER = frozenset({"ORG", "SEGMENT", "ENDS"})
_AL = Expr(((1, "al"),), "al")


@dataclass(slots=True)
class Symbol:
    """A label or EQU constant: ``kind`` is ``"code"``, ``"data"`` or ``"const"``;
    ``binding`` tells where a label that stood alone on its line bound."""

    kind: str
    value: int
    line: int
    binding: Binding | None = None


@dataclass(slots=True)
class Export:
    """A ``PUBLIC`` entry: export ``name`` for the code label ``label``."""

    name: str
    label: ExprOperand
    line: int


class Pass:
    """One walk over the statements; ``strict`` is the final, emitting pass.

    ``prev`` holds the previous pass's symbols (values of forward references) and
    ``prev_sizes`` its CODE words per statement (a statement that fails keeps its
    size, so later errors are about the real layout); ``defined`` is every symbol
    name the file defines."""

    def __init__(self, stmts: list[Statement], prev: dict[str, Symbol], prev_sizes: dict[int, int],
                 defined: frozenset[str], strict: bool, path: str) -> None:
        self.stmts = stmts
        self.prev = prev
        self.prev_sizes = prev_sizes
        self.defined = defined
        self.strict = strict
        self.path = path
        self.symbols: dict[str, Symbol] = {}
        self.sizes: dict[int, int] = {}
        self.words: list[int] = []
        self.debug: dict[int, DebugLine] = {}
        self.data = DataLayout(path, strict)
        self.exports: list[Export] = []
        self.entry: tuple[ExprOperand, int] | None = None
        self.memory: tuple[int, int | None] | None = None
        self.imports: tuple[int | None, int] | None = None
        self.explicit_debug: dict[int, DebugLine] | None = None
        self.errors: list[AsmError] = []
        self.held: list[Held] = []
        self.bindings: list[Binding] = []
        self.value_uses: dict[str, int] = {}
        self.last_placed = ""   # "code" or "data": what the last placing line placed

    # -- errors and symbols ---------------------------------------------------
    def err(self, code: str, msg: str, line: int) -> AsmError:
        return AsmError(code, msg, line=line, path=self.path)

    def fail(self, err: AsmError) -> None:
        """Record an error (strict pass; layout passes leave errors to it)."""
        if self.strict:
            self.errors.append(err.with_traceback(None))

    def define(self, name: str, kind: str, value: int, line: int,
               binding: Binding | None = None) -> None:
        if is_register(name):
            raise self.err("ASM_LABEL", f"{name!r} is a register name and cannot be a symbol", line)
        old = self.symbols.get(name)
        if old is not None:
            raise self.err("ASM_LABEL", f"duplicate symbol {name!r} (first defined on line {old.line})",
                           line)
        self.symbols[name] = Symbol(kind, value, line, binding)

    def define_all(self, names: list[tuple[str, int]], kind: str, value: int, quiet: bool) -> None:
        """Define each label; errors are recorded (or dropped when ``quiet``)."""
        for name, line in names:
            try:
                self.define(name, kind, value, line)
            except AsmError as err:
                if not quiet:
                    self.fail(err)

    def lookup(self, name: str, line: int) -> Symbol | None:
        sym = self.symbols.get(name) or self.prev.get(name)
        if sym is None and self.strict:
            hints = close_words(name, self.defined) + close_registers(name)
            raise self.err("ASM_LABEL", f"undefined symbol {name!r}{did_you_mean(hints)}", line)
        return sym

    def eval(self, operand: ExprOperand, line: int, *, as_value: bool = True) -> int:
        """The operand's value; ``as_value`` records the symbols as used for their value
        (not as a branch or call target)."""
        total = 0
        for sign, term in operand.expr.terms:
            if isinstance(term, int):
                total += sign * term
            else:
                sym = self.lookup(term, line)
                if as_value:
                    self.value_uses.setdefault(term, line)
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

    def not_code(self, what: str, name: str, sym: Symbol, line: int) -> AsmError:
        return self.err("ASM_LABEL", f"{what} {name!r} is a {sym.kind} symbol, not a code label"
                        f"{binding_note(sym.binding)}", line)

    # -- the walk: where labels bind -------------------------------------------
    def run_all(self) -> None:
        for index, st in enumerate(self.stmts):
            try:
                self.statement(index, st)
            except AsmError as err:
                self.fail(err)
        self.bind(None, "code", 4 * len(self.words))
        try:
            self.data.check_closed()
        except AsmError as err:
            self.fail(err)

    def statement(self, index: int, st: Statement) -> None:
        if st.kind == "equ":
            operand = st.operands[0]
            assert isinstance(operand, ExprOperand)
            self.define(st.name, "const", self.eval(operand, st.line), st.line)
        elif st.kind == "bad":
            self.bad_statement(index, st)
        elif st.kind == "instr" or st.name == "WORD":
            self.bind(st, "code", 4 * len(self.words))
            self.code_statement(index, st)
        elif st.name in DATA_DIRECTIVES:
            self.bind(st, "data", self.data.loc)
            self.last_placed = "data"
            self.data_directive(st)
        else:
            self.hold(st)
            if st.kind == "directive":
                if st.name in _MOVES_DATA_COUNTER:
                    self.last_placed = "data"
                self.other_directive(st)

    def hold(self, st: Statement) -> None:
        """The labels of a line that places nothing wait for the next line that does."""
        after_data = self.last_placed == "data"
        self.held += [Held(name, st.line, after_data, self.data.loc) for name in st.labels]

    def bind(self, st: Statement | None, kind: str, value: int, quiet: bool = False) -> None:
        """Bind the held labels and those of ``st`` (None: the end of the file)."""
        line = None if st is None else st.line
        for held in self.held:
            binding = Binding(held, kind, value, line)
            self.bindings.append(binding)
            try:
                self.define(held.name, kind, value, held.line, binding)
            except AsmError as err:
                self.fail(err)
        self.held = []
        if st is not None:
            self.define_all([(name, st.line) for name in st.labels], kind, value, quiet)

    def bad_statement(self, index: int, st: Statement) -> None:
        """A line that did not parse (its error is already recorded): keep its labels
        and its likely size so the rest of the file lays out as intended."""
        if st.name == "EQU":
            self.define_all([(name, st.line) for name in st.labels], "const", 0, quiet=True)
        elif st.name in DATA_DIRECTIVES:
            self.bind(st, "data", self.data.loc, quiet=True)
        elif st.name in PASS_DIRECTIVES:
            self.hold(st)
        else:  # an instruction, WORD or a misspelt mnemonic
            self.bind(st, "code", 4 * len(self.words), quiet=True)
            self.words.extend([0] * self.prev_sizes.get(index, 1))
            self.last_placed = "code"

    def code_statement(self, index: int, st: Statement) -> None:
        start = len(self.words)
        self.last_placed = "code"
        try:
            if st.op is not None:
                self.instruction(st, st.op)
            else:
                self.word_directive(st)
        except AsmError:
            del self.words[start:]
            self.words.extend([0] * self.prev_sizes.get(index, 1))
            raise
        finally:
            self.sizes[index] = len(self.words) - start

    # -- instructions -------------------------------------------------------------
    def instruction(self, st: Statement, op: OpInfo) -> None:
        lowered = lower(op, st.operands, self.defined.__contains__,
                        lambda expr: self.eval(expr, st.line))
        for base_op, operands in lowered:
            self.encode(st, base_op, operands)

    def encode(self, st: Statement, op: OpInfo, operands: tuple[Operand, ...]) -> None:
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

    def register_hint(self, op: OpInfo, i: int, operand: Operand) -> str:
        if isinstance(operand, ExprOperand) and operand.expr.symbol is not None:
            near = close_registers(operand.expr.symbol)
            if near:
                return did_you_mean(near)
        if isinstance(operand, ExprOperand) and op.fmt is Fmt.RRR and i == 2:
            return f" (an immediate is accepted in the two-operand form {op.mnemonic} r, imm)"
        if isinstance(operand, MemOperand) and op.fmt is Fmt.LDI:
            return " (to store an immediate write ST8/ST16/ST32/ST64 (base), imm)"
        return ""

    def operand_value(self, op: OpInfo, i: int, kind: Kind, operand: Operand, pc: int,
                      line: int) -> dict[tuple[int, str], int]:
        pos = f"operand {i + 1} of {op.mnemonic}"
        if kind is Kind.REG:
            if not isinstance(operand, RegOperand):
                raise self.err("ASM_SYNTAX", f"{pos} must be a register (HL DE A BC IX), "
                               f"got {operand.text!r}{self.register_hint(op, i, operand)}", line)
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
                raise self.not_code(f"{op.mnemonic} target", name, sym, line)
        target = self.eval(expr, line, as_value=False)
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
    def data_directive(self, st: Statement) -> None:
        name, line, place = st.name, st.line, self.data.place
        if name in _DATA_WIDTH:
            if not st.operands:
                raise self.err("ASM_SYNTAX", f"{name} needs at least one value", line)
            width = _DATA_WIDTH[name]
            lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width)) - 1
            for operand in st.operands:
                if isinstance(operand, StrOperand):
                    if name != "DB":
                        raise self.err("ASM_SYNTAX", f"strings are only allowed in DB, not {name}", line)
                    place(operand.data if self.strict else len(operand.data), line)
                    continue
                expr = self.expr_operand(operand, f"{name} value", line)
                value = self.check_range(self.eval(expr, line), lo, hi, f"{name} value {expr.text!r} =",
                                         line)
                place(struct.pack(_DATA_FMT[width], value & hi) if self.strict else width, line)
            return
        count = self.single_value(st)
        if name == "RESB":
            count = self.check_range(count, 0, MAX_DATA_BYTES, "RESB count", line)
        else:  # ALIGN
            if self.strict and (count < 1 or count > 1 << 16 or count & (count - 1)):
                raise self.err("ASM_RANGE", f"ALIGN {count} must be a power of two 1..65536", line)
            count = (-self.data.loc) % count if count > 0 else 0
        place(max(count, 0), line)

    def single_value(self, st: Statement) -> int:
        if len(st.operands) != 1:
            raise self.err("ASM_SYNTAX", f"{st.name} takes one value, got {len(st.operands)}", st.line)
        return self.eval(self.expr_operand(st.operands[0], f"{st.name} value", st.line), st.line)

    # -- other directives ---------------------------------------------------------
    def other_directive(self, st: Statement) -> None:
        handlers: dict[str, Callable[[Statement], None]] = {
            "ORG": self.org, "PUBLIC": self.public, "ENTRY": self.entry_directive,
            "MEMORY": self.memory_directive, "IMPORTS": self.imports_directive,
            "DEBUG": self.debug_directive, "SEGMENT": self.segment, "ENDS": self.ends,
        }
        handlers[st.name](st)

    def org(self, st: Statement) -> None:
        if self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", "ORG inside SEGMENT ... ENDS", st.line)
        self.data.loc = self.check_range(self.single_value(st), 0, MAX_ADDRESS - 1, "ORG address",
                                         st.line)

    def entry_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if len(ops) != 1 or not isinstance(ops[0], ExprOperand):
            raise self.err("ASM_SYNTAX", "ENTRY takes one code label", line)
        if self.entry is not None:
            raise self.err("ASM_SYNTAX", f"ENTRY given twice (first on line {self.entry[1]})", line)
        self.entry = (ops[0], line)

    def memory_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if not 1 <= len(ops) <= 2:
            raise self.err("ASM_SYNTAX", "MEMORY takes min_bytes [, max_bytes]", line)
        if self.memory is not None:
            raise self.err("ASM_SYNTAX", "MEMORY given twice", line)
        vals = [self.check_range(self.eval(self.expr_operand(o, "MEMORY value", line), line),
                                 0, 0xFFFF_FFFF, "MEMORY value", line) for o in ops]
        self.memory = (vals[0], vals[1] if len(vals) == 2 else None)

    def imports_directive(self, st: Statement) -> None:
        ops, line = st.operands, st.line
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

    def ends(self, st: Statement) -> None:
        if st.operands and self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", "ENDS takes no operands", st.line)
        self.data.close_segment(st.line)

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
            source = word_or_string(ops[2]) or ""
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
            self.exports.append(Export(export, ops[1], line))
            return
        for operand in ops:
            expr = self.expr_operand(operand, "PUBLIC operand", line)
            if expr.expr.symbol is None:
                raise self.err("ASM_SYNTAX", f"PUBLIC expects label names, got {operand.text!r}", line)
            self.exports.append(Export(expr.expr.symbol, expr, line))

    def segment(self, st: Statement) -> None:
        ops, line = st.operands, st.line
        if self.data.explicit is not None:
            raise self.err("ASM_SYNTAX", f"SEGMENT inside SEGMENT {self.data.explicit.name!r} "
                           f"(line {self.data.explicit.line}); close it with ENDS", line)
        if not 1 <= len(ops) <= 3:
            raise self.err("ASM_SYNTAX", "SEGMENT takes name [, perms [, size]]", line)
        seg_name = word_or_string(ops[0])
        if not seg_name:
            raise self.err("ASM_SYNTAX", f"bad segment name {ops[0].text!r}", line)
        perms = "rw"
        if len(ops) >= 2:
            perms = word_or_string(ops[1]) or ""
            if not perms or any(c not in "rwx" for c in perms) or "r" not in perms \
                    or len(set(perms)) != len(perms):
                raise self.err("ASM_SYNTAX", f"segment permissions {ops[1].text!r} must be letters from "
                               "rwx including r", line)
        size: int | None = None
        if len(ops) == 3:
            size = self.check_range(self.eval(self.expr_operand(ops[2], "segment size", line), line),
                                    0, MAX_ADDRESS, "segment size", line)
        self.data.open_segment(seg_name, perms, size, line)

    def code_label(self, operand: ExprOperand, what: str, line: int) -> int:
        """The CODE offset of the code label ``operand`` names (PUBLIC, ENTRY)."""
        name = operand.expr.symbol
        if name is None:
            raise self.err("ASM_SYNTAX", f"{what} expects a label, got {operand.text!r}", line)
        sym = self.lookup(name, line)
        assert sym is not None
        if sym.kind != "code":
            raise self.not_code(what, name, sym, line)
        return sym.value


def word_or_string(operand: Operand) -> str | None:
    """The text of a string operand or a bare word (segment names, permissions)."""
    if isinstance(operand, StrOperand):
        try:
            return operand.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(operand, ExprOperand):
        return operand.expr.symbol
    return None
