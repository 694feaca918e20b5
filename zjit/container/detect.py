"""Format detection: one entry point that loads any supported module input.

Sniffing order: magic ``ZASB`` (.zasm.bin v2), magic ``ROM!`` (ROM), JSON text
(a path ending ``.json``, or bytes that start with ``{`` and are NUL-free UTF-8:
module.json), else raw CODE words (entry 0, no exports) when the length is a
non-zero multiple of 4. Anything else is ``UNKNOWN_FORMAT``.
"""

from __future__ import annotations

import os
from pathlib import Path

from zjit.errors import ContainerError
from zjit.image import ModuleImage

from .manifest import manifest_name, read_manifest, read_manifest_bytes
from .rom import MAGIC as ROM_MAGIC
from .rom import read_rom, write_rom
from .zasm_bin import MAGIC as ZASB_MAGIC
from .zasm_bin import read_zasm_bin, write_zasm_bin

FORMATS = ("zasm", "rom")
"""Formats :func:`dump_image` can write."""

_SUFFIXES = (".zasm.bin", ".rom", ".zasm", ".bin", ".code", ".json")


def sniff(data: bytes) -> str:
    """Name the format of ``data``: ``zasm``, ``rom``, ``json``, ``raw`` or ``unknown``."""
    if data[:4] == ZASB_MAGIC:
        return "zasm"
    if data[:4] == ROM_MAGIC:
        return "rom"
    if data.lstrip(b" \t\r\n")[:1] == b"{" and b"\0" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "json"
    if data and len(data) % 4 == 0:
        return "raw"
    return "unknown"


def module_name(path: Path) -> str:
    """A module name from a file name (known suffixes removed)."""
    if path.name == "module.json":
        return manifest_name(path.resolve())
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return path.name or "module"


def _from_bytes(data: bytes, name: str, base_dir: Path) -> ModuleImage:
    kind = sniff(data)
    if kind == "zasm":
        return read_zasm_bin(data, name=name)
    if kind == "rom":
        return read_rom(data, name=name)
    if kind == "json":
        return read_manifest_bytes(data, base_dir, name=name)
    if kind == "raw":
        return ModuleImage(code=data, source_format="raw", name=name)
    raise ContainerError(
        "UNKNOWN_FORMAT",
        f"input ({len(data)} bytes) is not a .zasm.bin, ROM, module.json or raw code "
        "(raw code must be a non-zero multiple of 4 bytes)",
        offset=0,
    )


def load_image(source: bytes | bytearray | memoryview | str | os.PathLike[str], name: str | None = None) -> ModuleImage:
    """Load a module from bytes or a file path, whatever its format.

    Byte input that is JSON resolves its relative paths against the current
    directory; a file path resolves them against the file's directory.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), name or "module", Path.cwd())
    path = Path(source)
    mod_name = name or module_name(path)
    if path.suffix == ".json":
        return read_manifest(path, name=mod_name)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ContainerError("BAD_PATH", f"cannot read {str(path)!r}: {exc.strerror or exc}", path=str(path)) from exc
    return _from_bytes(data, mod_name, path.parent)


def dump_image(image: ModuleImage, fmt: str) -> bytes:
    """Serialise ``image`` as ``"zasm"`` (.zasm.bin v2) or ``"rom"``."""
    if fmt == "zasm":
        return write_zasm_bin(image)
    if fmt == "rom":
        return write_rom(image)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")
