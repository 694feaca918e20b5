"""A hypothesis strategy that damages valid files, shared by the parser property tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import strategies as st


def mutated(seeds: Sequence[bytes], fix: Callable[[bytearray], None] | None = None,
            max_extend: int = 40) -> st.SearchStrategy[bytes]:
    """One of ``seeds`` after 1-6 edits: flip a bit, set a byte, truncate, extend, or
    (when ``fix`` is given) re-fix what a reader checks first, such as a length
    field or a checksum, so the damage reaches deeper rules."""
    kinds = ["flip", "set", "truncate", "extend"] + (["fix"] if fix is not None else [])

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(list(seeds))))
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(kinds))
            if kind in ("flip", "set") and data:
                i = draw(st.integers(0, len(data) - 1))
                data[i] = data[i] ^ (1 << draw(st.integers(0, 7))) if kind == "flip" else draw(st.integers(0, 255))
            elif kind == "truncate" and data:
                del data[draw(st.integers(0, len(data) - 1)):]
            elif kind == "extend":
                data += draw(st.binary(min_size=1, max_size=max_extend))
            elif kind == "fix" and fix is not None:
                fix(data)
        return bytes(data)

    return strategy()
