"""Shared helpers of the commands that take a module file: loading it (containers,
assembly sources, raw code) with clean errors, and printing errors and warnings as
``file: CODE at where: message`` / ``file:line: CODE: message``."""

from __future__ import annotations

import sys

from zjit.container.names import INPUT_FORMATS
from zjit.errors import AsmWarning, ContainerError, ZjitError
from zjit.image import ModuleImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping
    from typing import Any

    from zjit.image import DebugLine

MAX_SHOWN = 20
"""Errors printed for one input; the rest are counted on a ``... N more`` line."""
MAX_JSON_ERRORS = 1000
"""Errors listed in a ``--json`` document (as many as an assembly keeps); the rest
are counted in its ``omitted`` field."""


def fail(message: str, command: str) -> None:
    """Print a usage problem of ``command`` on stderr: ``zjit: CMD: USAGE: message``."""
    sys.stderr.write(f"zjit: {command}: USAGE: {message}\n")


def add_format_option(p: argparse.ArgumentParser) -> None:
    """``--format auto|asm|raw``: how to read the MODULE argument."""
    p.add_argument("--format", choices=INPUT_FORMATS, default="auto",
                   help="how to read MODULE: auto (containers by content, .s/.asm/.zasm assembled, "
                        ".bin/.code/.raw raw code; the default), asm (assembly source) or raw (code words)")


def all_errors(err: ZjitError) -> tuple[list[ZjitError], int]:
    """Every error ``err`` stands for (all of an assembly's, all the verifier
    found) and how many more its source left out."""
    errors = getattr(err, "errors", None) or getattr(err, "all_errors", None) or (err,)
    return list(errors), int(getattr(err, "omitted", 0))


def shown_errors(err: ZjitError, limit: int = MAX_SHOWN) -> tuple[list[ZjitError], int]:
    """The errors to print for ``err`` (at most ``limit`` of :func:`all_errors`) and
    how many more there are."""
    errors, omitted = all_errors(err)
    return errors[:limit], max(len(errors) - limit, 0) + omitted


def error_json(err: ZjitError, debug: Mapping[int, DebugLine]) -> dict[str, Any]:
    """``err.to_dict()`` plus ``source``: ``FILE:LINE`` of its pc, when the module
    has a debug line there (else None)."""
    out = err.to_dict()
    where = debug.get(err.pc) if err.pc is not None else None
    out["source"] = f"{where.source}:{where.line}" if where is not None else None
    return out


def errors_json(errors: ZjitError | list[ZjitError], debug: Mapping[int, DebugLine],
                omitted: int = 0) -> dict[str, Any]:
    """The ``errors`` and ``omitted`` fields of a ``--json`` document: at most
    :data:`MAX_JSON_ERRORS` errors (for an exception: every error it stands for),
    and how many were left out."""
    if isinstance(errors, ZjitError):
        errors, more = all_errors(errors)
        omitted += more
    shown = errors[:MAX_JSON_ERRORS]
    return {"errors": [error_json(e, debug) for e in shown], "omitted": omitted + len(errors) - len(shown)}


def error_line(err: ZjitError, file: str) -> str:
    """One error as printed: ``file:line: CODE: message`` for assembler errors, else
    ``file: CODE at where: message`` (with a newline)."""
    if err.line is not None and err.offset is None and err.pc is None:
        return f"{file}:{err.line}: {err.code}: {err.message}\n"
    where = err.where()
    if err.path == file:  # the file name is already in front
        where = where[len(file):].lstrip()
    at = f" at {where}" if where and where != "input" else ""
    return f"{file}: {err.code}{at}: {err.message}\n"


def report(err: ZjitError, file: str) -> None:
    """Print an error (all of an assembly's, up to :data:`MAX_SHOWN`) with its code and
    location; assembler errors as ``file:line``."""
    errors, more = shown_errors(err)
    for e in errors:
        sys.stderr.write(error_line(e, file))
    if more:
        sys.stderr.write(f"zjit: {file}: ... {more} more error(s)\n")


def print_warning(warning: AsmWarning) -> None:
    """Print an assembler warning: ``file:line: warning: CODE: message``."""
    sys.stderr.write(f"{warning.path}:{warning.line}: warning: {warning.code}: {warning.message}\n")


def read_bytes(path: str) -> bytes:
    """The bytes of the regular file ``path``, within the default policy's module-file
    limit (ContainerError BAD_PATH for what cannot be read or is not a regular file,
    FILE_TOO_LARGE past the limit, checked before reading)."""
    from zjit.container.bounded import module_file_limit, read_regular
    from zjit.policy import Policy

    limit = module_file_limit(Policy())
    return read_regular(path, limit, label=repr(path), where=path, too_large=lambda size: ContainerError(
        "FILE_TOO_LARGE", f"{path!r} is {size} bytes, the policy allows module files up to {limit}", path=path))


def load_module(path: str, fmt: str = "auto") -> ModuleImage:
    """Load a module file: a container, an assembly source (assembled, warnings
    printed) or raw code; ``fmt`` as for ``--format``."""
    from zjit.container.detect import load_image

    return load_image(path, format=fmt, warn=print_warning)
