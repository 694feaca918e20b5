"""Line parser: assembly text -> :class:`Statement` records (no symbol resolution)."""

from __future__ import annotations

from dataclasses import dataclass

from zjit.errors import AsmError
from zjit.isa import BY_MNEMONIC, REG_INDEX, OpInfo

from .hints import close_registers, close_words, did_you_mean
from .lexer import IDENT_CHARS, IDENT_START, Tok, Token, tokenize

DATA_DIRECTIVES = frozenset({"DB", "DW", "DD", "DQ", "RESB", "ALIGN"})
"""Directives that place bytes in guest memory (a label before them names data)."""
PASS_DIRECTIVES = frozenset({"ORG", "PUBLIC", "ENTRY", "SEGMENT", "ENDS", "MEMORY", "IMPORTS",
                             "DEBUG"})
"""Directives a pending label skips over (it binds to the next code or data line)."""
CODE_DIRECTIVES = frozenset({"WORD"})
"""Directives that place words in CODE."""
DIRECTIVES = DATA_DIRECTIVES | PASS_DIRECTIVES | CODE_DIRECTIVES
KEYWORDS = frozenset(BY_MNEMONIC) | DIRECTIVES | {"EQU", "STR"}
"""Every word that may start an instruction or directive (for hints)."""


@dataclass(frozen=True, slots=True)
class Expr:
    """A sum of signed terms; each term is an int or a symbol name."""

    terms: tuple[tuple[int, int | str], ...]
    text: str

    @property
    def symbol(self) -> str | None:
        """The symbol name when the expression is exactly one symbol."""
        if len(self.terms) == 1 and self.terms[0][0] == 1 and isinstance(self.terms[0][1], str):
            return self.terms[0][1]
        return None


@dataclass(frozen=True, slots=True)
class RegOperand:
    """A register name."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class MemOperand:
    """``(base)``, ``(base+disp)`` or ``(base-disp)``."""

    base: int
    disp: Expr
    text: str


@dataclass(frozen=True, slots=True)
class ExprOperand:
    """An immediate, label or condition name (``#`` prefix optional)."""

    expr: Expr
    text: str


@dataclass(frozen=True, slots=True)
class StrOperand:
    """A double-quoted string (already unescaped to bytes)."""

    data: bytes
    text: str


Operand = RegOperand | MemOperand | ExprOperand | StrOperand


@dataclass(frozen=True, slots=True)
class Statement:
    """One source line after parsing.

    ``kind`` is ``"instr"`` (``op`` set), ``"directive"``, ``"equ"`` (``name`` is
    the symbol, ``operands`` its value), ``"empty"`` (labels only, or nothing) or
    ``"bad"``: a line that did not parse, reduced to what could be recovered (its
    labels, and in ``name`` its first word upper-cased, ``EQU`` for an EQU line whose
    symbol is then the only label) so the rest of the file still lays out and every
    error is reported once.
    """

    line: int
    labels: tuple[str, ...]
    kind: str
    name: str
    operands: tuple[Operand, ...]
    op: OpInfo | None = None


def _syntax(msg: str, line: int, path: str | None) -> AsmError:
    return AsmError("ASM_SYNTAX", msg, line=line, path=path)


def is_register(name: str) -> bool:
    """True when ``name`` is a register name (any case)."""
    return name.upper() in REG_INDEX


def _span(text: str, toks: list[Token]) -> str:
    start = toks[0].col - 1
    end = toks[-1].col - 1 + len(toks[-1].text)
    return text[start:end]


def parse_expr(toks: list[Token], line: int, path: str | None, src: str) -> Expr:
    """Parse ``[#] [+|-]term {(+|-) term}``; terms are numbers, chars or symbols."""
    what = _span(src, toks) if toks else ""
    i = 0
    if toks and toks[0].text == "#":
        i = 1
    terms: list[tuple[int, int | str]] = []
    expect_term = True
    sign = 1
    while i < len(toks):
        t = toks[i]
        if t.kind is Tok.PUNCT and t.text in "+-":
            if t.text == "-":
                sign = -sign
            expect_term = True
        elif not expect_term:
            raise _syntax(f"expected + or - before {t.text!r} in {what!r}", line, path)
        elif t.kind is Tok.NUMBER:
            assert isinstance(t.value, int)
            terms.append((sign, t.value))
            sign, expect_term = 1, False
        elif t.kind is Tok.IDENT:
            if is_register(t.text):
                raise _syntax(f"register {t.text} cannot be used in an expression ({what!r})",
                              line, path)
            terms.append((sign, t.text))
            sign, expect_term = 1, False
        else:
            raise _syntax(f"unexpected {t.text!r} in expression {what!r}", line, path)
        i += 1
    if expect_term:
        raise _syntax(f"incomplete expression {what!r}" if what else "missing value", line, path)
    return Expr(tuple(terms), what)


def _parse_operand(toks: list[Token], line: int, path: str | None, src: str) -> Operand:
    text = _span(src, toks)
    first = toks[0]
    if first.text == "(" and first.kind is Tok.PUNCT:
        if toks[-1].text != ")" or len(toks) < 3:
            raise _syntax(f"memory operand {text!r} must look like (REG), (REG+disp) or (REG-disp)",
                          line, path)
        base = toks[1]
        if base.kind is not Tok.IDENT or not is_register(base.text):
            hint = did_you_mean(close_registers(base.text)) if base.kind is Tok.IDENT else ""
            raise _syntax(f"memory operand {text!r} needs a base register first{hint}", line, path)
        inner = toks[2:-1]
        if not inner:
            disp = Expr(((1, 0),), "0")
        elif inner[0].text not in "+-" or inner[0].kind is not Tok.PUNCT:
            raise _syntax(f"expected + or - after {base.text} in {text!r}", line, path)
        else:
            disp = parse_expr(inner, line, path, src)
        return MemOperand(REG_INDEX[base.text.upper()], disp, text)
    if any(t.text in "()" and t.kind is Tok.PUNCT for t in toks):
        raise _syntax(f"misplaced parenthesis in operand {text!r}", line, path)
    if first.kind is Tok.STRING:
        if len(toks) != 1:
            raise _syntax(f"unexpected text after string in {text!r}", line, path)
        assert isinstance(first.value, bytes)
        return StrOperand(first.value, text)
    if first.kind is Tok.IDENT and is_register(first.text):
        if len(toks) != 1:
            raise _syntax(f"unexpected text after register in {text!r}", line, path)
        return RegOperand(REG_INDEX[first.text.upper()], first.text.upper())
    return ExprOperand(parse_expr(toks, line, path, src), text)


def _split_operands(toks: list[Token], line: int, path: str | None, src: str) -> tuple[Operand, ...]:
    if not toks:
        return ()
    groups: list[list[Token]] = [[]]
    depth = 0
    for t in toks:
        if t.kind is Tok.PUNCT and t.text == "(":
            depth += 1
        elif t.kind is Tok.PUNCT and t.text == ")":
            depth -= 1
            if depth < 0:
                raise _syntax(f"unbalanced ')' in column {t.col}", line, path)
        if t.kind is Tok.PUNCT and t.text == "," and depth == 0:
            groups.append([])
            continue
        groups[-1].append(t)
    if depth != 0:
        raise _syntax("unbalanced '(' in operands", line, path)
    for n, g in enumerate(groups):
        if not g:
            raise _syntax(f"empty operand {n + 1} (stray comma?)", line, path)
    return tuple(_parse_operand(g, line, path, src) for g in groups)


def parse_line(src: str, line: int, path: str | None = None) -> Statement:
    """Parse one line: optional ``label:`` definitions, then an instruction, a
    directive, ``name EQU value``, or nothing."""
    toks = tokenize(src, line, path)
    labels: list[str] = []
    while len(toks) >= 2 and toks[0].kind is Tok.IDENT and toks[1].text == ":" \
            and toks[1].kind is Tok.PUNCT:
        labels.append(toks[0].text)
        toks = toks[2:]
    if not toks:
        return Statement(line, tuple(labels), "empty", "", ())
    head = toks[0]
    if head.kind is not Tok.IDENT:
        raise _syntax(f"expected a mnemonic or directive, found {head.text!r}", line, path)
    if len(labels) == 1 and head.text.upper() == "EQU":  # reference form "name: EQU value"
        toks = [Token(Tok.IDENT, labels[0], None, head.col)] + toks
        head, labels = toks[0], []
    if len(toks) >= 2 and toks[1].kind is Tok.IDENT and toks[1].text.upper() == "EQU":
        if labels:
            raise _syntax(f"EQU symbol {head.text!r} cannot also have a label", line, path)
        if len(toks) == 2:
            raise _syntax(f"EQU for {head.text!r} needs a value", line, path)
        value = ExprOperand(parse_expr(toks[2:], line, path, src), _span(src, toks[2:]))
        return Statement(line, (), "equ", head.text, (value,))
    word = head.text.upper()
    if word == "STR":  # reference spelling of DB
        word = "DB"
    operands = _split_operands(toks[1:], line, path, src)
    if word in BY_MNEMONIC:
        return Statement(line, tuple(labels), "instr", word, operands, BY_MNEMONIC[word])
    if word in DIRECTIVES:
        return Statement(line, tuple(labels), "directive", word, operands)
    if len(toks) >= 2 and toks[1].text == ":":
        raise _syntax(f"bad label {head.text!r}", line, path)
    hint = did_you_mean(close_words(word, KEYWORDS, fold_case=True))
    raise _syntax(f"unknown mnemonic or directive {head.text!r}{hint}", line, path)


def _word_at(src: str, pos: int) -> tuple[str, int]:
    """The identifier starting at or after blanks from ``pos`` (``""`` if none), and
    where it ends."""
    while pos < len(src) and src[pos] in " \t":
        pos += 1
    end = pos
    if end < len(src) and src[end] in IDENT_START:
        end += 1
        while end < len(src) and src[end] in IDENT_CHARS:
            end += 1
    return src[pos:end], end


def recover(src: str, line: int) -> Statement:
    """What a line that failed to parse still tells: its labels and first word."""
    labels: list[str] = []
    pos = 0
    while True:
        word, end = _word_at(src, pos)
        after = end
        while after < len(src) and src[after] in " \t":
            after += 1
        if not word or after >= len(src) or src[after] != ":":
            break
        labels.append(word)
        pos = after + 1
    head, end = _word_at(src, pos)
    second, _ = _word_at(src, end)
    if head and second.upper() == "EQU":
        return Statement(line, (head,), "bad", "EQU", ())
    if head.upper() == "EQU" and len(labels) == 1:
        return Statement(line, tuple(labels), "bad", "EQU", ())
    return Statement(line, tuple(n for n in labels if not is_register(n)), "bad", head.upper(), ())


def parse(text: str, path: str | None = None) -> tuple[list[Statement], list[AsmError]]:
    """Parse a whole source text (lines numbered from 1): every line becomes a
    statement (``"bad"`` where it failed to parse) and every failure an error."""
    stmts: list[Statement] = []
    errors: list[AsmError] = []
    for n, src in enumerate(text.splitlines(), start=1):
        try:
            stmts.append(parse_line(src, n, path))
        except AsmError as err:
            errors.append(err)
            stmts.append(recover(src, n))
    return stmts, errors
