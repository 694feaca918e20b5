"""The symbol side of an assembler pass: defining and looking up symbols, evaluating
expressions, range checks and collecting errors."""

from __future__ import annotations

from dataclasses import dataclass

from zjit.errors import AsmError

from .binding import Binding, binding_note
from .hints import close_registers, close_words, did_you_mean
from .parser import ExprOperand, Operand, Statement, is_register


@dataclass(slots=True)
class Symbol:
    """A label or EQU constant: ``kind`` is ``"code"``, ``"data"`` or ``"const"``;
    ``binding`` tells where a label that stood alone on its line bound."""

    kind: str
    value: int
    line: int
    binding: Binding | None = None


class Evaluator:
    """The symbol table of one pass.

    ``prev`` holds the previous pass's symbols (the values of forward references),
    ``defined`` every symbol name the file defines (for hints and host-call names).
    ``strict`` marks the final pass: it checks ranges and collects every error in
    ``errors``. ``value_uses`` records where each symbol is first used for its value."""

    def __init__(self, prev: dict[str, Symbol], defined: frozenset[str], strict: bool,
                 path: str) -> None:
        self.prev = prev
        self.defined = defined
        self.strict = strict
        self.path = path
        self.symbols: dict[str, Symbol] = {}
        self.errors: list[AsmError] = []
        self.value_uses: dict[str, int] = {}

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

    def single_value(self, st: Statement) -> int:
        """The one value operand of a directive."""
        if len(st.operands) != 1:
            raise self.err("ASM_SYNTAX", f"{st.name} takes one value, got {len(st.operands)}", st.line)
        return self.eval(self.expr_operand(st.operands[0], f"{st.name} value", st.line), st.line)

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

    def not_code(self, what: str, name: str, sym: Symbol, line: int) -> AsmError:
        return self.err("ASM_LABEL", f"{what} {name!r} is a {sym.kind} symbol, not a code label"
                        f"{binding_note(sym.binding)}", line)
