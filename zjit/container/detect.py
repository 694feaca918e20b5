"""Format detection: one entry point that loads any supported module input.

Sniffing order for ``format="auto"``: magic ``ZASB`` (.zasm.bin v2), magic ``ROM!``
(ROM), then the file name (``.zasm.bin``/``.rom``: that container; ``.s``/``.asm``/
``.zasm``: an assembly source, assembled on the fly), JSON text (a path ending
``.json``, or bytes that start with ``{`` and are NUL-free UTF-8: module.json), then
raw CODE words (entry 0, no exports): from files named ``.bin``/``.code``/``.raw``,
or bytes, that do not look like text. Anything else is ``UNKNOWN_FORMAT``, with a
message saying how the input was read (:mod:`zjit.container.text`).
``format="asm"``/``"raw"`` skip the sniffing.
"""

from __future__ import annotations

import os
from pathlib import Path

from zjit.container.names import INPUT_FORMATS, RAW_SUFFIXES, SOURCE_SUFFIXES, has_suffix
from zjit.errors import ContainerError
from zjit.image import ModuleImage

from .bounded import module_file_limit, read_regular

TYPE_CHECKING = False  # typing-only imports (docs/startup.md)
if TYPE_CHECKING:
    from zjit.asm.assembler import WarningSink
    from zjit.policy import Policy

FORMATS = ("zasm", "rom")
"""Formats :func:`dump_image` can write."""

_SUFFIXES = (".zasm.bin", ".rom", ".zasm", ".bin", ".code", ".raw", ".json", ".s", ".asm")
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
    name = Path(path).name
    if name == "module.json":

        from .manifest import manifest_name

        return manifest_name(Path(path))
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "module"


def _from_bytes(data: bytes, name: str, source: str | os.PathLike[str] | None, policy: Policy | None,
                fmt: str = "auto", warn: WarningSink | None = None) -> ModuleImage:
    """Parse ``data``, read from the file ``source`` (None: bytes given directly).

    A module.json resolves its paths against the directory of ``source``, or the
    current directory when None."""
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {fmt!r} (expected auto, asm or raw)")
    file_name = None if source is None else Path(source).name
    kind = "raw" if fmt == "raw" else "asm" if fmt == "asm" else sniff(data)
    if kind not in ("zasm", "rom") and fmt == "auto" and file_name is not None:
        if has_suffix(file_name, (".zasm.bin",)):
            kind = "zasm"  # without its magic: the reader says so
        elif has_suffix(file_name, (".rom",)):
            kind = "rom"
        elif has_suffix(file_name, SOURCE_SUFFIXES):
            kind = "asm"
    if kind == "zasm":
        from .zasm_bin import read_zasm_bin

        return read_zasm_bin(data, name=name)
    if kind == "rom":
        from .rom import read_rom

        return read_rom(data, name=name)
    if kind == "json":

        from .manifest import read_manifest_bytes

        base_dir = Path.cwd() if source is None else Path(source).parent
        return read_manifest_bytes(data, base_dir, name=name, policy=policy)
    if kind == "asm":
        from .text import assemble_source

        return assemble_source(data, name if source is None else os.fspath(source), name, warn)
    if fmt == "raw":
        return ModuleImage(code=data, source_format="raw", name=name)
    # Raw code: bytes of a whole number of words, or a file named like raw code
    # (whatever its length: the verifier names what is wrong), and never text.
    from .text import looks_like_text, not_a_module

    raw = kind == "raw" if file_name is None else has_suffix(file_name, RAW_SUFFIXES)
    if raw and not looks_like_text(data):
        return ModuleImage(code=data, source_format="raw", name=name)
    raise not_a_module(data, None if source is None else os.fspath(source))


def load_image(source: bytes | bytearray | memoryview | str | os.PathLike[str], name: str | None = None,
               format: str = "auto", warn: WarningSink | None = None,
               policy: Policy | None = None) -> ModuleImage:
    """Load a module from bytes or a file path, whatever its format.

    ``format`` is ``"auto"`` (sniff, see the module docstring), ``"asm"`` (assemble
    the text) or ``"raw"`` (take the bytes as CODE words). Byte input that is JSON
    resolves its relative paths against the current directory; a file path resolves
    them against the file's directory. Assembler warnings go to ``warn`` (default:
    :mod:`warnings`). Files are read within ``policy``'s caps (default
    :class:`~zjit.policy.Policy`): regular files only (else ``BAD_PATH``), a module
    file over :func:`~zjit.container.bounded.module_file_limit` is ``FILE_TOO_LARGE``
    before a byte is read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), name or "module", None, policy, format, warn)
    path, file_name = str(Path(source)), Path(source).name
    mod_name = name or module_name(source)
    if format == "auto" and file_name.endswith(".json") and len(file_name) > len(".json"):
        from .manifest import read_manifest

        return read_manifest(path, name=mod_name, policy=policy)
    if policy is None:
        from zjit.policy import Policy

        policy = Policy()
    limit = module_file_limit(policy)
    data = read_regular(path, limit, label=repr(path), where=path, too_large=lambda size: ContainerError(
        "FILE_TOO_LARGE", f"{path!r} is {size} bytes, the policy allows module files up to {limit}", path=path))
    return _from_bytes(data, mod_name, path, policy, format, warn)


def dump_image(image: ModuleImage, fmt: str) -> bytes:
    """Serialise ``image`` as ``"zasm"`` (.zasm.bin v2) or ``"rom"``."""
    if fmt == "zasm":
        from .zasm_bin import write_zasm_bin

        return write_zasm_bin(image)
    if fmt == "rom":
        from .rom import write_rom

        return write_rom(image)
    raise ValueError(f"unknown output format {fmt!r} (expected one of {', '.join(FORMATS)})")
