"""Shared helpers of the ``asm``, ``disasm`` and ``verify`` commands: loading a module
file with a clean error, and printing errors as ``file: CODE at where: message``."""

from __future__ import annotations

import sys

from zjit.errors import ContainerError, ZjitError
from zjit.image import ModuleImage


def fail(message: str) -> None:
    """Print one ``zjit: ...`` diagnostic line on stderr."""
    sys.stderr.write(f"zjit: {message}\n")


def report(err: ZjitError, file: str) -> None:
    """Print an error with its code and location; assembler errors as ``file:line``."""
    if err.line is not None and err.offset is None and err.pc is None:
        sys.stderr.write(f"{file}:{err.line}: {err.code}: {err.message}\n")
        return
    where = err.where()
    if err.path == file:  # the file name is already in front
        where = where[len(file):].lstrip()
    at = f" at {where}" if where and where != "input" else ""
    sys.stderr.write(f"{file}: {err.code}{at}: {err.message}\n")


def read_bytes(path: str) -> bytes:
    """The file's bytes, or ContainerError BAD_PATH naming the file and the OS error."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ContainerError("BAD_PATH", f"cannot read {path}: {reason}", path=path) from None


def load_module(path: str) -> ModuleImage:
    """Load any supported container (.zasm.bin, ROM, module.json) from a file."""
    from zjit.container.detect import load_image

    return load_image(path)
