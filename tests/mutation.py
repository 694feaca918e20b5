"""A hypothesis strategy that damages valid files, shared by the parser property
tests; the edits themselves are :func:`zjit.fuzz.mutate.mutate`, as in the
container fuzz campaign (:mod:`zjit.fuzz.containers`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import strategies as st
from zjit.fuzz.choosers import DrawChooser
from zjit.fuzz.mutate import mutate


def mutated(seeds: Sequence[bytes], fix: Callable[[bytearray], None] | None = None,
            max_extend: int = 40) -> st.SearchStrategy[bytes]:
    """One of ``seeds`` after 1-6 edits (flip a bit, set a byte, write an edge
    value into a u32, truncate, extend, or re-fix what a reader checks first when
    ``fix`` is given: see :func:`zjit.fuzz.mutate.mutate`)."""

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        c = DrawChooser(draw)
        return mutate(c.choice(list(seeds)), c, fix, max_extend)

    return strategy()
