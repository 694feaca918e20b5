"""Hints for assembler errors ("did you mean ...?"): close mnemonics, registers, symbols.

Candidates are ranked with :mod:`difflib`; registers, being one or two letters,
are matched by shape instead (``B`` -> ``BC``, ``HX`` -> ``HL`` or ``IX``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from zjit.isa import REG_NAMES

MAX_HINTS = 3


def _join(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def did_you_mean(names: list[str]) -> str:
    """`` (did you mean X, Y or Z?)``, or ``""`` for no names."""
    return f" (did you mean {_join(names)}?)" if names else ""


def close_words(word: str, candidates: Iterable[str], *, fold_case: bool = False) -> list[str]:
    """The candidates closest to ``word`` (best first, at most :data:`MAX_HINTS`).

    With ``fold_case`` the comparison ignores case (mnemonics, directives); otherwise a
    candidate differing from ``word`` only in case comes first (symbols are
    case-sensitive, so ``Main`` for ``main`` is a likely slip)."""
    pool = sorted(set(candidates))
    if fold_case:
        upper = {c.upper(): c for c in pool}
        found = difflib.get_close_matches(word.upper(), list(upper), n=MAX_HINTS, cutoff=0.6)
        return [upper[c] for c in found if c != word.upper()]
    same_case = [c for c in pool if c.lower() == word.lower() and c != word]
    rest = [c for c in difflib.get_close_matches(word, pool, n=MAX_HINTS, cutoff=0.6)
            if c != word and c not in same_case]
    return (same_case + rest)[:MAX_HINTS]


def close_registers(word: str) -> list[str]:
    """Register names ``word`` was probably meant to be: those containing it
    (``B`` -> ``BC``) or differing from it in one letter (``HX`` -> ``HL``, ``IX``)."""
    w = word.upper()
    out = []
    for reg in REG_NAMES:
        if reg == w:
            continue
        if w in reg or (len(reg) == len(w) > 1 and sum(a != b for a, b in zip(reg, w, strict=True)) == 1):
            out.append(reg)
    return out
