"""File-name conventions for module inputs: which endings mean an assembly source
or raw code, and the ``--format`` choices."""

from __future__ import annotations

INPUT_FORMATS = ("auto", "asm", "raw")
"""How to read a module input: ``auto`` (containers by their bytes, then by file
name), ``asm`` (assembly source) or ``raw`` (raw CODE words)."""
SOURCE_SUFFIXES = (".s", ".asm", ".zasm")
"""File name endings of assembly sources (``zjit run prog.s`` assembles them)."""
RAW_SUFFIXES = (".bin", ".code", ".raw")
"""File name endings of raw code (``.zasm.bin`` excepted: a container)."""


def has_suffix(file_name: str, suffixes: tuple[str, ...]) -> bool:
    """True when ``file_name`` ends with one of ``suffixes`` (any case) and has a stem."""
    low = file_name.lower()
    return any(low.endswith(s) and len(low) > len(s) for s in suffixes)
