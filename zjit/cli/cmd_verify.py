"""``zjit verify MODULE [--json]``: parse and verify, listing every error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED
from zjit.errors import ZjitError

from ._tooling import (
    MAX_SHOWN,
    add_format_option,
    all_errors,
    error_json,
    error_line,
    errors_json,
    load_module,
)


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    p.add_argument("module", metavar="MODULE",
                   help=".zasm.bin, ROM, module.json, assembly source (.s) or raw code (.bin)")
    add_format_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the module verifies, 3 when it is rejected (any error)."""
    from zjit.verifier import verify, verify_all

    path: str = args.module
    errors: list[ZjitError] = []
    omitted = 0
    summary: dict[str, Any] = {}
    debug: dict[int, Any] = {}
    try:
        image = load_module(path, args.format)
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
        found, omitted = all_errors(err)  # an assembly reports all its errors
        errors.extend(found)
    if args.json:
        doc: dict[str, Any] = {"file": path, "ok": not errors, **summary,
                               **errors_json(errors, debug, omitted)}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_REJECTED if errors else EXIT_OK
    if errors:
        for e in errors[:MAX_SHOWN]:
            sys.stderr.write(error_line(e, path))
            src = error_json(e, debug)["source"]
            if src:
                sys.stderr.write(f"    (source {src})\n")
        total = len(errors) + omitted
        if total > MAX_SHOWN:
            sys.stderr.write(f"zjit: {path}: ... {total - MAX_SHOWN} more error(s)\n")
        sys.stderr.write(f"zjit: {path}: rejected ({total} error(s))\n")
        return EXIT_REJECTED
    print(f"ok: {summary['instructions']} instructions, {summary['blocks']} blocks, "
          f"{summary['functions']} functions")
    return EXIT_OK
