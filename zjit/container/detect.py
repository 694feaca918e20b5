"""Format detection: one entry point that loads any supported module input.

Sniffing order: magic ``ZASB`` (.zasm.bin v2), magic ``ROM!`` (ROM), JSON text
(a path ending ``.json``, or bytes that start with ``{`` and are NUL-free UTF-8:
module.json), else raw CODE words (entry 0, no exports) when the length is a
non-zero multiple of 4. Anything else is ``UNKNOWN_FORMAT``.
"""

from __future__ import annotations

import os

from zjit._shims.paths import split_path
from zjit.errors import ContainerError
from zjit.image import ModuleImage

FORMATS = ("zasm", "rom")
"""Formats :func:`dump_image` can write."""

_SUFFIXES = (".zasm.bin", ".rom", ".zasm", ".bin", ".code", ".json")
# The container magics, here so sniffing imports no reader (tests/test_startup.py
# checks them against zasm_bin.MAGIC and rom.MAGIC). Each reader is imported only
# when its format is seen, so loading a .zasm.bin never imports the ROM or JSON code.
_ZASB_MAGIC = b"ZASB"
_ROM_MAGIC = b"ROM!"


def sniff(data: bytes) -> str:
    """Name the format of ``data``: ``zasm``, ``rom``, ``json``, ``raw`` or ``unknown``."""
    if data[:4] == _ZASB_MAGIC:
        return "zasm"
    if data[:4] == _ROM_MAGIC:
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


def module_name(path: str | os.PathLike[str]) -> str:
    """A module name from a file name (known suffixes removed)."""
    name = split_path(path)[1]
    if name == "module.json":
        from pathlib import Path

        from .manifest import manifest_name

        return manifest_name(Path(path).resolve())
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "module"


def _from_bytes(data: bytes, name: str, source: str | os.PathLike[str] | None) -> ModuleImage:
    """Parse ``data``; a module.json resolves its paths against the directory of
    ``source`` (the file it came from), or the current directory when None."""
    kind = sniff(data)
    if kind == "zasm":
        from .zasm_bin import read_zasm_bin

        return read_zasm_bin(data, name=name)
    if kind == "rom":
        from .rom import read_rom

        return read_rom(data, name=name)
    if kind == "json":
        from pathlib import Path

        from .manifest import read_manifest_bytes

        base_dir = Path.cwd() if source is None else Path(source).parent
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
        return _from_bytes(bytes(source), name or "module", None)
    path, file_name = split_path(source)
    mod_name = name or module_name(source)
    if file_name.endswith(".json") and len(file_name) > len(".json"):  # Path(source).suffix == ".json"
        from .manifest import read_manifest

        return read_manifest(path, name=mod_name)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ContainerError("BAD_PATH", f"cannot read {path!r}: {exc.strerror or exc}", path=path) from exc
    return _from_bytes(data, mod_name, path)


def dump_image(image: ModuleImage, fmt: str) -> bytes:
    """Serialise ``image`` as ``"zasm"`` (.zasm.bin v2) or ``"rom"``."""
    if fmt == "zasm":
        from .zasm_bin import write_zasm_bin

        return write_zasm_bin(image)
    if fmt == "rom":
        from .rom import write_rom

        return write_rom(image)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")
