"""``zjit compile MODULE --target x86_64|aarch64 -o DIR``: ahead-of-time build.

Writes ``DIR/<name>.o``, ``DIR/zjit.h``, ``DIR/segments/<segment>.bin`` and
``DIR/manifest.json`` (``formats.md`` 5, docs/aot.md). Exit status: 0 built,
2 usage error, 3 module rejected (container, verify, segment or policy error, or
the compiler failed).
"""

from __future__ import annotations

import argparse
import sys

from zjit.cli._values import count_arg as _count
from zjit.cli._values import size_arg as _size
from zjit.cli.exits import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from zjit.errors import ZjitError
from zjit.isa import DEFAULT_MAX_CALL_DEPTH


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    from zjit.cli._tooling import add_format_option

    p.add_argument("module", metavar="MODULE",
                   help=".zasm.bin, ROM, module.json, assembly source (.s) or raw code (.bin)")
    add_format_option(p)
    p.add_argument("--target", required=True, choices=["x86_64", "aarch64"], help="target architecture")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("-O", "--opt-level", type=int, choices=[0, 1, 2], default=2, help="optimisation level (default 2)")
    p.add_argument("--fuel", type=_count, metavar="N",
                   help="build metered code; the manifest records N as the starting fuel")
    p.add_argument("--max-call-depth", type=_count, default=DEFAULT_MAX_CALL_DEPTH, metavar="N",
                   help=f"guest call depth the host should allow (default {DEFAULT_MAX_CALL_DEPTH})")
    p.add_argument("--mem-size", type=_size, metavar="N",
                   help="guest memory size to check segments against (default: module minimum or 2 MiB)")
    p.add_argument("--cpu", default="generic", metavar="NAME", help="LLVM CPU name (default generic)")
    p.add_argument("--name", metavar="NAME", help="object file name without .o (default: the module name)")
    p.add_argument("--json", action="store_true", help="print the manifest on stdout")


def main(args: argparse.Namespace) -> int:
    """Build the outputs; map failures to the exit status."""
    from zjit.backends.aot import AotOptions, build_aot
    from zjit.cli._tooling import fail, load_module, read_bytes, report
    from zjit.errors import ContainerError

    if not args.cpu or any(c.isspace() for c in args.cpu):
        fail("--cpu must be a non-empty LLVM CPU name", "compile")
        return EXIT_USAGE
    options = AotOptions(
        target=args.target,
        opt_level=args.opt_level,
        cpu=args.cpu,
        fuel=args.fuel,
        max_call_depth=args.max_call_depth,
        mem_size=args.mem_size,
        name=args.name,
    )
    try:
        source = read_bytes(args.module)
        image = load_module(args.module, args.format)
        manifest = build_aot(image, args.output, options, source_bytes=source, source_path=args.module)
    except ZjitError as err:
        report(err, args.module)
        return EXIT_REJECTED
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else args.output
        report(ContainerError("BAD_PATH", f"cannot write {where}: {exc.strerror or exc}", path=args.output),
               args.output)
        return EXIT_REJECTED
    if args.json:
        import json

        sys.stdout.write(json.dumps(manifest, indent=2) + "\n")
    else:
        sys.stderr.write(
            f"zjit: wrote {args.output}/{manifest['object']} ({args.target}, "
            f"{len(manifest['segments'])} segment(s), entry {manifest['entry']['symbol']})\n"
        )
    return EXIT_OK
