"""``zjit verify MODULE [--json]``: parse and verify, listing every error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED
from zjit.errors import ZjitError

from ._tooling import load_module, report


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    p.add_argument("module", metavar="MODULE", help=".zasm.bin, ROM or module.json")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _with_source(err: ZjitError, debug: dict[int, Any]) -> dict[str, Any]:
    out = err.to_dict()
    where = debug.get(err.pc) if err.pc is not None else None
    out["source"] = f"{where.source}:{where.line}" if where is not None else None
    return out


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the module verifies, 3 when it is rejected (any error)."""
    from zjit.verifier import verify, verify_all

    path: str = args.module
    errors: list[ZjitError] = []
    summary: dict[str, Any] = {}
    debug: dict[int, Any] = {}
    try:
        image = load_module(path)
        debug = dict(image.debug)
        errors.extend(verify_all(image))
        if not errors:
            prog = verify(image)
            summary = {
                "instructions": len(prog.instrs),
                "blocks": len(prog.blocks),
                "functions": len(prog.functions),
                "code_bytes": len(image.code),
                "entry": prog.entry,
                "exports": dict(prog.exports),
                "imports": prog.prims_used,
                "segments": [s.name for s in image.segments],
                "format": image.source_format,
            }
    except ZjitError as err:
        errors.append(err)
    if args.json:
        doc: dict[str, Any] = {"file": path, "ok": not errors, **summary,
                               "errors": [_with_source(e, debug) for e in errors]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_REJECTED if errors else EXIT_OK
    if errors:
        for e in errors:
            report(e, path)
            src = _with_source(e, debug)["source"]
            if src:
                sys.stderr.write(f"    (source {src})\n")
        sys.stderr.write(f"zjit: {path}: rejected ({len(errors)} error(s))\n")
        return EXIT_REJECTED
    print(f"ok: {summary['instructions']} instructions, {summary['blocks']} blocks, "
          f"{summary['functions']} functions")
    return EXIT_OK
