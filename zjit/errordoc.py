"""Render the error-code table of ``docs/errors.md`` from :data:`zjit.errors.CODES`."""

from __future__ import annotations

from .errors import CODES

HEADER = """# Error codes

Every input error zjit raises is a `zjit.ZjitError` with one of these stable codes.
The location is given as a byte offset into the input, a CODE pc, a JSON path, a
source line or the segments involved. This file is generated from
`zjit/errors.py` (`python -m zjit.errordoc > docs/errors.md`); a test keeps it in step.

| code | category | meaning |
|---|---|---|
"""


def render() -> str:
    """The whole Markdown document."""
    rows = [f"| `{code}` | {cat} | {meaning} |" for code, (cat, meaning) in CODES.items()]
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
