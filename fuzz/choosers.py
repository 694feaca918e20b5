"""Sources of random decisions for the program generators.

The generators are written once against :class:`Chooser`; a plain seedable
``random.Random`` (campaigns, benchmarks) or a hypothesis ``draw`` function
(property tests, with shrinking) supplies the decisions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Chooser(Protocol):
    """Every random decision a generator makes goes through one of these."""

    def randint(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi`` (inclusive)."""
        ...

    def choice(self, seq: Sequence[T]) -> T:
        """One element of a non-empty sequence."""
        ...

    def chance(self, p: float) -> bool:
        """True with probability ``p`` (shrinks towards False)."""
        ...

    def randbytes(self, n: int) -> bytes:
        """``n`` arbitrary bytes."""
        ...


class RandomChooser:
    """Decisions from a seeded :class:`random.Random` (deterministic per seed)."""

    def __init__(self, seed: int | str | random.Random) -> None:
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def randint(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``."""
        return self.rng.randint(lo, hi)

    def choice(self, seq: Sequence[T]) -> T:
        """One element of ``seq``."""
        return seq[self.rng.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def randbytes(self, n: int) -> bytes:
        """``n`` random bytes."""
        return self.rng.randbytes(n)


class DrawChooser:
    """Decisions drawn from hypothesis (``draw`` of an ``st.composite``).

    Integers shrink towards ``lo``, choices towards the first element and
    chances towards False, so failing programs shrink to simpler ones.
    """

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self._draw = draw
        self._st = st

    def randint(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``."""
        value: int = self._draw(self._st.integers(lo, hi))
        return value

    def choice(self, seq: Sequence[T]) -> T:
        """One element of ``seq``."""
        return seq[self.randint(0, len(seq) - 1)]

    def chance(self, p: float) -> bool:
        """True with probability about ``p``."""
        return self.randint(0, 999) >= round(1000 * (1.0 - p))

    def randbytes(self, n: int) -> bytes:
        """``n`` bytes expanded from one drawn seed (keeps hypothesis' buffer small)."""
        seed = self.randint(0, (1 << 32) - 1)
        return random.Random(seed).randbytes(n)
