"""``str(pathlib.Path(p))`` and ``Path(p).name`` without importing :mod:`pathlib`
(about 5 ms of start-up with its imports; docs/startup.md)."""

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

