"""Shared helpers of the ``asm``, ``disasm`` and ``verify`` commands: loading a module
file with a clean error, and printing errors as ``file: CODE at where: message``."""

from __future__ import annotations

import importlib
import sys
from typing import Any

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
    """Load any supported container (``zjit.container.detect.load_image``)."""
    read_bytes(path)  # a clean BAD_PATH error for missing or unreadable files
    try:
        detect: Any = importlib.import_module("zjit.container.detect")
    except ModuleNotFoundError:
        detect = None
    if detect is not None:
        image: ModuleImage = detect.load_image(path)
        return image
    # Fallback while the format detector is not in the tree: dispatch on magic.
    data = read_bytes(path)
    if data[:4] == b"ZASB":
        from zjit.container.zasm_bin import read_zasm_bin
        return read_zasm_bin(data, name=path)
    if data[:4] == b"ROM!":
        rom: Any = importlib.import_module("zjit.container.rom")
        image = rom.read_rom(data, name=path)
        return image
    raise ContainerError("UNKNOWN_FORMAT", f"{path} is not a known module format", offset=0, path=path)
