"""``zjit examples [NAME] [--copy DIR]``: the example programs shipped with zjit.

They are the package data of :mod:`zjit.examples` (the ``examples/`` folder of a
source checkout), so an installed wheel has them too: ``zjit examples`` lists
them with their first comment line, ``zjit examples hello.s`` prints one, and
``zjit examples --copy DIR`` copies all of them (``segments/`` included) into
``DIR``, never over an existing file.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    p.add_argument("name", metavar="NAME", nargs="?", help="print this example (e.g. hello.s)")
    p.add_argument("--copy", metavar="DIR", help="copy every example into DIR (made if missing)")


def example_files() -> dict[str, Traversable]:
    """Relative path -> file, for every example (subfolders included)."""
    out: dict[str, Traversable] = {}
    todo: list[tuple[str, Traversable]] = [("", files("zjit.examples"))]
    while todo:
        prefix, folder = todo.pop()
        for entry in folder.iterdir():
            if entry.name.startswith(("__", ".")):
                continue
            if entry.is_dir():
                todo.append((f"{prefix}{entry.name}/", entry))
            else:
                out[prefix + entry.name] = entry
    return dict(sorted(out.items()))


def _summary(entry: Traversable) -> str:
    """The first comment line of a source (without ``; name:``), else ''."""
    if not entry.name.endswith(".s"):
        return ""
    first = entry.read_text(encoding="utf-8").partition("\n")[0].lstrip("; ")
    return first.partition(": ")[2] or first


def _copy(target: str, found: dict[str, Traversable]) -> int:
    import os

    from zjit.errors import ContainerError

    from ._tooling import report

    clashes = [rel for rel in found if os.path.lexists(os.path.join(target, rel))]
    if clashes:
        report(ContainerError("BAD_PATH", f"{clashes[0]} exists there; nothing copied (no file is overwritten)",
                              path=target), target)
        return EXIT_REJECTED
    try:
        for rel, entry in found.items():
            path = os.path.join(target, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "xb") as fh:
                fh.write(entry.read_bytes())
    except OSError as exc:
        report(ContainerError("BAD_PATH", f"cannot write {exc.filename or target}: {exc.strerror or exc}",
                              path=target), target)
        return EXIT_REJECTED
    print(f"copied {len(found)} files to {target}/")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    """List, print or copy; exit 3 when NAME is unknown or DIR cannot take the files."""
    found = example_files()
    if args.copy:
        return _copy(args.copy, found)
    if args.name is None:
        width = max(len(rel) for rel in found)
        for rel, entry in found.items():
            print(f"{rel:<{width}}  {_summary(entry)}".rstrip())
        return EXIT_OK
    chosen = found.get(args.name)
    if chosen is None:
        from zjit.errors import ContainerError

        from ._tooling import report

        report(ContainerError("BAD_PATH", f"no example named {args.name!r} (zjit examples lists them)",
                              path=args.name), args.name)
        return EXIT_REJECTED
    sys.stdout.buffer.write(chosen.read_bytes())
    return EXIT_OK
