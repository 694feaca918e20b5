"""Tokenizer for one line of ZASM assembly text.

Tokens: identifiers (``[A-Za-z_.$][A-Za-z0-9_.$]*``), integers (decimal, ``0x`` hex,
``0b`` binary, ``0o`` octal, underscores allowed between digits), character
literals (``'c'``, with escapes), strings (``"..."``, with escapes) and the
punctuation ``, : ( ) + - #``. A ``;`` outside a literal starts a comment.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from zjit.errors import AsmError


class Tok(enum.Enum):
    """Token kinds."""

    IDENT = "identifier"
    NUMBER = "number"
    STRING = "string"
    PUNCT = "punctuation"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``value`` is the int for numbers/chars, the bytes for strings."""

    kind: Tok
    text: str
    value: int | bytes | None
    col: int


IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.$")
IDENT_CHARS = IDENT_START | frozenset("0123456789")
_PUNCT = frozenset(",:()+-#")
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8,
            "f": 12, "v": 11, "e": 27}


def _error(msg: str, line: int, path: str | None) -> AsmError:
    return AsmError("ASM_SYNTAX", msg, line=line, path=path)


def _read_escape(text: str, i: int, line: int, path: str | None) -> tuple[int, int]:
    """Decode the escape starting after a backslash at ``text[i]``; return (byte, next i)."""
    if i >= len(text):
        raise _error("backslash at end of line", line, path)
    c = text[i]
    if c == "x":
        digits = text[i + 1:i + 3]
        if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise _error(f"bad \\x escape {text[i - 1:i + 3]!r}", line, path)
        return int(digits, 16), i + 3
    if c in _ESCAPES:
        return _ESCAPES[c], i + 1
    raise _error(f"unknown escape '\\{c}'", line, path)


def _parse_number(text: str, line: int, path: str | None) -> int:
    body = text.replace("_", "")
    low = body.lower()
    try:
        if low.startswith("0x"):
            return int(body[2:], 16)
        if low.startswith("0b"):
            return int(body[2:], 2)
        if low.startswith("0o"):
            return int(body[2:], 8)
        if not body.isdigit():
            raise ValueError(text)
        return int(body, 10)
    except ValueError:
        raise _error(f"bad number {text!r}", line, path) from None


def tokenize(text: str, line: int, path: str | None = None) -> list[Token]:
    """Split one source line into tokens (comments dropped)."""
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\f\v":
            i += 1
        elif c == ";":
            break
        elif c in IDENT_START:
            j = i + 1
            while j < n and text[j] in IDENT_CHARS:
                j += 1
            toks.append(Token(Tok.IDENT, text[i:j], None, i + 1))
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            toks.append(Token(Tok.NUMBER, word, _parse_number(word, line, path), i + 1))
            i = j
        elif c == "'":
            j = i + 1
            if j < n and text[j] == "\\":
                value, j = _read_escape(text, j + 1, line, path)
            elif j < n and text[j] != "'":
                code = ord(text[j])
                if code > 0x7F:
                    raise _error(f"character literal {text[i:j + 2]!r} is not ASCII", line, path)
                value, j = code, j + 1
            else:
                raise _error("empty character literal", line, path)
            if j >= n or text[j] != "'":
                raise _error(f"unterminated character literal {text[i:j + 1]!r}", line, path)
            toks.append(Token(Tok.NUMBER, text[i:j + 1], value, i + 1))
            i = j + 1
        elif c == '"':
            j = i + 1
            out = bytearray()
            while True:
                if j >= n:
                    raise _error(f"unterminated string {text[i:]!r}", line, path)
                ch = text[j]
                if ch == '"':
                    break
                if ch == "\\":
                    b, j = _read_escape(text, j + 1, line, path)
                    out.append(b)
                else:
                    out += ch.encode("utf-8")
                    j += 1
            toks.append(Token(Tok.STRING, text[i:j + 1], bytes(out), i + 1))
            i = j + 1
        elif c in _PUNCT:
            toks.append(Token(Tok.PUNCT, c, None, i + 1))
            i += 1
        else:
            raise _error(f"unexpected character {c!r} in column {i + 1}", line, path)
    return toks
