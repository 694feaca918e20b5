"""One pass of the assembler over the parsed statements.

Layout passes (``strict`` False) only place things, so that every symbol gets a
value; the final strict pass encodes the words, checks every range and collects
every error (one per statement) instead of stopping at the first. Symbols live in
:mod:`.evaluator`, directives in :mod:`.directives`; this module walks the lines,
binds labels and encodes instructions.
"""

from __future__ import annotations

from zjit.encoding import ld_words, pack
from zjit.errors import AsmError
from zjit.image import DebugLine
from zjit.isa import COND_INDEX, MASK64, Fmt, OpInfo

from .binding import Binding, Held
from .compat import COND_ALIASES, lower
from .directives import Directives
from .evaluator import Symbol
from .hints import close_registers, did_you_mean
from .parser import (
    DATA_DIRECTIVES,
    PASS_DIRECTIVES,
    Expr,
    ExprOperand,
    MemOperand,
    Operand,
    RegOperand,
    Statement,
)
from .syntax import LAYOUTS, Kind, Src, usage

_MOVES_DATA_COUNTER = frozenset({"ORG", "SEGMENT", "ENDS"})
_AL = Expr(((1, "al"),), "al")


class Pass(Directives):
    """One walk over the statements; ``strict`` is the final, emitting pass.

    ``prev_sizes`` holds the previous pass's CODE words per statement: a statement
    that fails keeps its size, so later errors are about the real layout."""

    def __init__(self, stmts: list[Statement], prev: dict[str, Symbol], prev_sizes: dict[int, int],
                 defined: frozenset[str], strict: bool, path: str) -> None:
        super().__init__(prev, defined, strict, path)
        self.stmts = stmts
        self.prev_sizes = prev_sizes
        self.sizes: dict[int, int] = {}
        self.words: list[int] = []
        self.debug: dict[int, DebugLine] = {}
        self.held: list[Held] = []
        self.bindings: list[Binding] = []
        self.last_placed = ""   # "code" or "data": what the last placing line placed

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


