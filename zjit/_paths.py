"""``str(pathlib.Path(p))`` and ``Path(p).name`` without importing :mod:`pathlib`
(about 5 ms of start-up with its imports; docs/startup.md), and the file name
endings that say what a module input is."""

from __future__ import annotations

import os


def split_path(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(str(Path(path)), Path(path).name)`` by pathlib's POSIX rules: repeated
    separators and ``.`` components dropped, a leading ``//`` kept."""
    text = os.fspath(path)
    root = ""
    if text.startswith("/"):
        root = "//" if text.startswith("//") and not text.startswith("///") else "/"
    parts = [p for p in text.split("/") if p and p != "."]
    return (root + "/".join(parts)) or ".", parts[-1] if parts else ""


def path_str(path: str | os.PathLike[str]) -> str:
    """``str(pathlib.Path(path))``."""
    return split_path(path)[0]


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
