"""``zjit asm FILE.s [-o OUT] [--format zasm|rom]``: assemble text into a container."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from zjit.container.names import SOURCE_SUFFIXES
from zjit.errors import ContainerError, ZjitError
from zjit.image import ModuleImage

from ._tooling import fail, print_warning, read_bytes, report

WRITERS = {
    "zasm": ("zjit.container.zasm_bin", "write_zasm_bin", ".zasm.bin"),
    "rom": ("zjit.container.rom", "write_rom", ".rom"),
}


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    p.add_argument("source", metavar="FILE.s", help="assembly source ('-' reads stdin)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: FILE with .zasm.bin or .rom in place of .s)")
    p.add_argument("--format", choices=sorted(WRITERS), default=None,
                   help="container format (default: rom when OUT ends in .rom, else zasm)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _writer(fmt: str) -> Callable[[ModuleImage], bytes] | None:
    module_name, func, _ = WRITERS[fmt]
    try:
        module: Any = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    writer: Callable[[ModuleImage], bytes] | None = getattr(module, func, None)
    return writer


def _default_output(source: str, fmt: str) -> str:
    stem = source
    for ext in SOURCE_SUFFIXES:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem + WRITERS[fmt][2]


def main(args: argparse.Namespace) -> int:
    """Assemble; exit 0 on success, 3 when the source or the container is rejected."""
    from zjit.asm import assemble
    from zjit.container.text import decode_source

    source: str = args.source
    fmt = args.format or ("rom" if (args.output or "").lower().endswith(".rom") else "zasm")
    if source == "-" and not args.output:
        fail("reading stdin needs -o OUT", "asm")
        return EXIT_USAGE
    out_path: str = args.output or _default_output(source, fmt)
    writer = _writer(fmt)
    if writer is None:
        fail(f"the {fmt} writer is not available", "asm")
        return EXIT_USAGE
    try:
        raw = sys.stdin.buffer.read() if source == "-" else read_bytes(source)
        image = assemble(decode_source(raw, source), name=source, warn=print_warning)
        blob = writer(image)
    except ZjitError as err:
        report(err, source)
        return EXIT_REJECTED
    try:
        tmp = out_path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, out_path)
    except OSError as exc:
        report(ContainerError("BAD_PATH", f"cannot write {out_path}: {exc.strerror or exc}",
                              path=out_path), out_path)
        return EXIT_REJECTED
    if not args.quiet:
        print(f"{source} -> {out_path}: {len(image.code) // 4} code words, "
              f"{len(image.segments)} data segment(s), {len(blob)} bytes ({fmt})")
    _warn_unverified(image, out_path)
    return EXIT_OK


def _warn_unverified(image: ModuleImage, out_path: str) -> None:
    """Assembly accepts code the verifier rejects (useful for tests); say so."""
    try:
        from zjit.verifier import verify_all
    except ImportError:  # pragma: no cover - the verifier is part of the package
        return
    for err in verify_all(image):
        where = image.debug.get(err.pc) if err.pc is not None else None
        at = f" ({where.source}:{where.line})" if where is not None else ""
        sys.stderr.write(f"zjit: warning: {out_path} will not verify: {err}{at}\n")
