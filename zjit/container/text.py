"""Inputs that are not containers: assembly sources, raw code, and telling text from
code (docs/formats.md, "Detection").

Text is never taken for raw code. Every program that can run ends with a ``RET`` or
``JR`` word, whose bytes include 0x00, so valid code never passes
:func:`looks_like_text`; an input that does and is not a container is assembled
(when named like a source or asked to) or rejected with a message saying how it was
read.
"""

from __future__ import annotations

from pathlib import Path

from zjit.container.names import RAW_SUFFIXES, has_suffix
from zjit.errors import AsmError, ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zjit.asm.assembler import WarningSink
    from zjit.image import ModuleImage

_SAMPLE = 1 << 16
_WHITESPACE = frozenset("\t\n\r\f\v")


def looks_like_text(data: bytes) -> bool:
    """True when ``data`` (its first 64 KiB) is non-empty UTF-8 made of printable
    characters, tabs and line breaks."""
    sample = data[:_SAMPLE]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) <= _SAMPLE or exc.start < len(sample) - 3:
            return False
        text = sample[: exc.start].decode("utf-8")  # a character cut by the sample's end
    return bool(text) and all(c.isprintable() or c in _WHITESPACE for c in text)


def _lines(data: bytes) -> str:
    n = data.count(b"\n") + (not data.endswith(b"\n"))
    return f"{n} line{'s' if n != 1 else ''}"


def decode_source(raw: bytes, name: str) -> str:
    """Assembly text from bytes (ASM_SYNTAX naming the line of a byte that is not UTF-8)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AsmError("ASM_SYNTAX", f"source is not UTF-8 text (byte {exc.start})", line=line,
                       path=name) from None


def assemble_source(data: bytes, source: str, name: str | None,
                    warn: WarningSink | None = None) -> ModuleImage:
    """Assemble ``data`` read from ``source`` (its debug lines name ``source``); the
    image is called ``name`` (default: ``source`` without directories and suffix)."""
    from zjit.asm import assemble

    image = assemble(decode_source(data, source), source, warn=warn)
    if name is not None and name != image.name:
        import dataclasses

        image = dataclasses.replace(image, name=name)
    return image


def not_a_module(data: bytes, source: str | None) -> ContainerError:
    """``UNKNOWN_FORMAT`` for input (read from the file ``source``, None for bytes) that
    is no container and may not be taken as raw code, saying how it was read and what
    to do."""
    what = "the input" if source is None else source
    containers = "not a .zasm.bin, ROM or module.json"
    if looks_like_text(data):
        read = f"{what} is UTF-8 text ({_lines(data)}), {containers}, and text is never taken for raw code"
        if source is None:
            todo = ("to assemble it, pass format='asm' (or use zjit.asm.assemble / `zjit asm`); "
                    "format='raw' takes it as code anyway")
        elif has_suffix(Path(source).name, RAW_SUFFIXES):
            todo = (f"assemble it with `zjit asm {source}` (or --format asm), or pass --format raw "
                    "to take it as code anyway")
        else:
            todo = (f"assemble it with `zjit asm {source}`, or name it .s (or pass --format asm) to "
                    "assemble it on the fly")
        return ContainerError("UNKNOWN_FORMAT", f"{read}; {todo}", offset=0)
    if source is not None:
        return ContainerError(
            "UNKNOWN_FORMAT",
            f"{what} ({len(data)} bytes) is {containers}; raw code is read only from files named "
            f"{', '.join(RAW_SUFFIXES[:-1])} or {RAW_SUFFIXES[-1]}, or with --format raw", offset=0)
    return ContainerError(
        "UNKNOWN_FORMAT",
        f"input ({len(data)} bytes) is not a .zasm.bin, ROM, module.json or raw code "
        "(raw code must be a non-zero multiple of 4 bytes)", offset=0)
