"""Format detection: one entry point that loads any supported module input.

Sniffing order: magic ``ZASB`` (.zasm.bin v2), magic ``ROM!`` (ROM), JSON text
(a path ending ``.json``, or bytes that start with ``{`` and are NUL-free UTF-8:
module.json), else raw CODE words (entry 0, no exports) when the length is a
non-zero multiple of 4. Anything else is ``UNKNOWN_FORMAT``.
"""

from __future__ import annotations

import os

from zjit._paths import split_path
from zjit.errors import ContainerError
from zjit.image import ModuleImage

from .bounded import module_file_limit, read_regular

TYPE_CHECKING = False  # typing-only import (docs/startup.md)
if TYPE_CHECKING:
    from zjit.policy import Policy

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

        return manifest_name(Path(path))
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "module"


def _from_bytes(data: bytes, name: str, source: str | os.PathLike[str] | None, policy: Policy | None) -> ModuleImage:
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
        return read_manifest_bytes(data, base_dir, name=name, policy=policy)
    if kind == "raw":
        return ModuleImage(code=data, source_format="raw", name=name)
    raise ContainerError(
        "UNKNOWN_FORMAT",
        f"input ({len(data)} bytes) is not a .zasm.bin, ROM, module.json or raw code "
        "(raw code must be a non-zero multiple of 4 bytes)",
        offset=0,
    )


def load_image(source: bytes | bytearray | memoryview | str | os.PathLike[str], name: str | None = None,
               policy: Policy | None = None) -> ModuleImage:
    """Load a module from bytes or a file path, whatever its format.

    Byte input that is JSON resolves its relative paths against the current
    directory; a file path resolves them against the file's directory. Files are
    read within ``policy``'s caps (default :class:`~zjit.policy.Policy`): regular
    files only (else ``BAD_PATH``), a module file over
    :func:`~zjit.container.bounded.module_file_limit` is ``FILE_TOO_LARGE`` before a
    byte is read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), name or "module", None, policy)
    path, file_name = split_path(source)
    mod_name = name or module_name(source)
    if file_name.endswith(".json") and len(file_name) > len(".json"):  # Path(source).suffix == ".json"
        from .manifest import read_manifest

        return read_manifest(path, name=mod_name, policy=policy)
    if policy is None:
        from zjit.policy import Policy

        policy = Policy()
    limit = module_file_limit(policy)
    data = read_regular(path, limit, label=repr(path), where=path, too_large=lambda size: ContainerError(
        "FILE_TOO_LARGE", f"{path!r} is {size} bytes, the policy allows module files up to {limit}", path=path))
    return _from_bytes(data, mod_name, path, policy)


def dump_image(image: ModuleImage, fmt: str) -> bytes:
    """Serialise ``image`` as ``"zasm"`` (.zasm.bin v2) or ``"rom"``."""
    if fmt == "zasm":
        from .zasm_bin import write_zasm_bin

        return write_zasm_bin(image)
    if fmt == "rom":
        from .rom import write_rom

        return write_rom(image)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")
