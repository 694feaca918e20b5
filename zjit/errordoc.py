"""Render the error-code table of ``docs/errors.md`` from :data:`zjit.errors.CODES`."""

from __future__ import annotations

from .errors import CODES, WARNING_CODES

HEADER = """# Error codes

Every input error zjit raises is a `zjit.ZjitError` with one of these stable codes.
The location is given as a byte offset into the input, a CODE pc, a JSON path, a
source line or the segments involved. This file is generated from
`zjit/errors.py` (`python -m zjit.errordoc > docs/errors.md`); a test keeps it in step.

| code | category | meaning |
|---|---|---|
"""


WARNINGS_HEADER = """
## Warning codes

Warnings (`zjit.errors.AsmWarning`, a `UserWarning`) never fail a build. The
assembler issues them through Python's `warnings` module; the `zjit` commands print
them on stderr as `FILE:LINE: warning: CODE: message`.

| code | meaning |
|---|---|
"""


CACHE_WARNING = """
## Cache warning

`zjit.errors.CacheWarning` (a `UserWarning`) says that the on-disk code cache, or
one directory of it, is not used because it fails its trust checks: not owned by
the user, writable by group or others, a symbolic link (`cache.md`, "Trust"). It
is issued once per cache object; nothing fails, the code is compiled instead.
"""


def render() -> str:
    """The whole Markdown document."""
    rows = [f"| `{code}` | {cat} | {meaning} |" for code, (cat, meaning) in CODES.items()]
    warn_rows = [f"| `{code}` | {meaning} |" for code, meaning in WARNING_CODES.items()]
    return HEADER + "\n".join(rows) + "\n" + WARNINGS_HEADER + "\n".join(warn_rows) + "\n" + CACHE_WARNING


if __name__ == "__main__":
    print(render(), end="")
