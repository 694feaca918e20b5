"""``zjit`` command line: one module per command under :mod:`zjit.cli`.

Each command module defines ``add_parser(subparsers) -> None`` and
``main(args: argparse.Namespace) -> int``. Commands are imported lazily: when the
first argument names a command only that command's module is imported (and
registered), so ``zjit run`` never imports the assembler, the fuzzer or the
compiler; anything else (``--help``, ``--version``, a typo) registers them all.
A plain ``zjit run`` command line does not even import :mod:`argparse`
(:func:`zjit.cli.cmd_run.parse_plain`, docs/startup.md).

Exit codes (``interfaces.md``) are in :mod:`zjit.cli.exits`: 0 success, 1 trap
(``run`` only), 2 usage error, 3 rejected input (container, verify, segment or
policy error).
"""

from __future__ import annotations

import sys

from .exits import EXIT_INTERRUPTED, EXIT_USAGE

TYPE_CHECKING = False  # argparse and typing stay unimported on the `zjit run` path
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "run": "run the module entry (or an export) and print guest output",
    "verify": "parse and verify a module, printing every error with code and offset",
    "compile": "ahead-of-time build: object file, header, segments, manifest",
    "asm": "assemble ZASM text into a .zasm.bin or ROM container",
    "disasm": "list a module's ZASM code (or its native code / IR)",
    "fuzz": "differential fuzzing of the engines against the interpreter",
    "cache": "show (info) or empty (clear) the on-disk code cache",
    "examples": "list, print or copy the example programs shipped with zjit",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every available command registered (or just the
    command ``only``: parsing a command line that starts with it gives the same
    result either way)."""
    from ._parser import Parser as _Parser

    parser = _Parser(prog="zjit", description="Verified, sandboxed JIT for ZASM.")
    from zjit import __version__

    parser.add_argument("--version", action="version", version=f"zjit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        if only is not None and name != only:
            continue
        module_name = f"zjit.cli.cmd_{name}"
        try:
            __import__(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        mod = sys.modules[module_name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(p)
        p.set_defaults(_handler=mod.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zjit`` console script (``argv`` None: ``sys.argv``)."""
    if argv is None:
        status = main(sys.argv[1:])
        # The process is about to exit: move every object to the permanent GC
        # generation so that the collections of interpreter shutdown have nothing
        # to traverse (~3 ms for a `zjit run`, docs/startup.md). Only for the
        # console script and `python -m zjit`: callers passing argv keep running.
        import gc

        gc.freeze()
        return status
    argv = list(argv)
    args: object = None
    if argv and argv[0] == "run":
        from . import cmd_run

        args = cmd_run.parse_plain(argv[1:])
    if args is None:
        parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
        args = parser.parse_args(argv)
        if getattr(args, "_handler", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    handler = getattr(args, "_handler")  # noqa: B009 - set by every command's parser
    try:
        rc: int = handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("zjit: INTERRUPTED: stopped by Ctrl-C\n")
        return EXIT_INTERRUPTED
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
