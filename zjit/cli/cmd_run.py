"""``zjit run MODULE``: run the entry (or an export); guest output alone on stdout.

Guest input comes from stdin (or ``--stdin FILE``) and is streamed; guest output
is streamed to stdout; LOG records and diagnostics go to stderr. Exit status:
0 normal end, 1 trap, 2 usage error, 3 module rejected. Only the chosen backend
is imported, so ``--engine interp`` never loads the JIT.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from zjit.cli._values import count_arg as _count
from zjit.cli._values import count_value as _count_value
from zjit.cli._values import register_arg as _register
from zjit.cli._values import register_value as _register_value
from zjit.cli._values import seconds_arg as _seconds
from zjit.cli._values import seconds_value as _seconds_value
from zjit.cli._values import size_arg as _size
from zjit.cli._values import size_value as _size_value
from zjit.cli.exits import EXIT_OK, EXIT_REJECTED, EXIT_TRAP, EXIT_USAGE
from zjit.container.names import INPUT_FORMATS
from zjit.errors import ZjitError

TYPE_CHECKING = False  # argparse and typing stay unimported on this path (docs/startup.md)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import BinaryIO

    from zjit.errors import AsmWarning
    from zjit.image import DebugLine
    from zjit.result import Result, Trap


def _engine_value(text: str) -> str:
    """An engine name; like argparse's ``choices``, checked at every occurrence."""
    from zjit.runtime import BACKENDS

    if text not in BACKENDS:
        raise ValueError(f"invalid choice: {text!r}")
    return text


def _tier_value(text: str) -> str:
    """A tier (auto, baseline, optimized); like argparse's ``choices``."""
    from zjit.policy import TIERS

    if text not in TIERS:
        raise ValueError(f"invalid choice: {text!r}")
    return text


def _format_value(text: str) -> str:
    """An input format (auto, asm, raw); like argparse's ``choices``."""
    if text not in INPUT_FORMATS:
        raise ValueError(f"invalid choice: {text!r}")
    return text


# Options of `zjit run`: dest, converter (None: a flag), default.
_OPTIONS: dict[str, tuple[str, Callable[[str], object] | None, object]] = {
    "--engine": ("engine", _engine_value, "jit"),
    "--fuel": ("fuel", _count_value, None),
    "--mem-size": ("mem_size", _size_value, None),
    "--stdin": ("stdin", str, None),
    "--json": ("json", None, False),
    "--call": ("call", str, None),
    "--reg": ("reg", _register_value, None),
    "--timeout": ("timeout", _seconds_value, None),
    "--format": ("format", _format_value, "auto"),
    "--tier": ("tier", _tier_value, "auto"),
    "--tier-threshold": ("tier_threshold", _size_value, None),
    "--max-output": ("max_output", _count_value, None),
}
_REPEATED = {"reg"}
"""Options that may be given several times (argparse's ``append``)."""


def parse_plain(argv: Sequence[str]) -> SimpleNamespace | None:
    """The arguments of ``zjit run ARGV...`` without argparse (~6 ms of start-up),
    for plain command lines: exact option names (``--opt VALUE`` or ``--opt=VALUE``,
    values not starting with ``-``), one MODULE, valid values. Anything else
    (help, abbreviations, errors...) returns None, and argparse parses the line as
    it always did; where both parse, the results are equal (tests/test_startup.py)."""

    values: dict[str, object] = {dest: default for dest, _, default in _OPTIONS.values()}
    module: str | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-"):
            if module is not None:
                return None
            module = token
            continue
        name, eq, value = token.partition("=")
        spec = _OPTIONS.get(name)
        if spec is None or (eq and spec[1] is None):
            return None
        dest, convert, _ = spec
        if convert is None:
            values[dest] = True
            continue
        if not eq:
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            converted = convert(value)
        except ValueError:
            return None
        if dest in _REPEATED:
            values[dest] = [*(values[dest] or ()), converted]  # type: ignore[misc]
        else:
            values[dest] = converted
    if module is None:
        return None
    return SimpleNamespace(command="run", module=module, **values, _handler=main)


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    from zjit.cli._tooling import add_format_option
    from zjit.policy import TIERS
    from zjit.runtime import BACKENDS

    p.add_argument("module", metavar="MODULE",
                   help=".zasm.bin, ROM, module.json, assembly source (.s) or raw code (.bin)")
    add_format_option(p)
    p.add_argument("--engine", choices=sorted(BACKENDS), default="jit",
                   help="execution engine (default: jit)")
    p.add_argument("--fuel", type=_count, metavar="N", help="meter execution: N instructions' worth of fuel")
    p.add_argument("--mem-size", type=_size, metavar="N", help="guest memory size in bytes")
    p.add_argument("--stdin", metavar="FILE", help="guest input from FILE instead of stdin")
    p.add_argument("--json", action="store_true",
                   help="print the whole result as JSON on stdout (guest output inside it)")
    p.add_argument("--call", metavar="NAME", help="run the export NAME instead of the entry")
    p.add_argument("--reg", type=_register, action="append", metavar="REG=VALUE",
                   help="preset a register for the run (repeatable; e.g. --reg HL=5 --reg DE=0x10)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="wall-clock limit per run, in seconds")
    p.add_argument("--tier", choices=TIERS, default="auto",
                   help="compiling engines: baseline code promoted to O2 when hot (auto, the default), "
                        "baseline code only, or everything at O2 before the run (optimized)")
    p.add_argument("--tier-threshold", type=_size, metavar="N",
                   help="with --tier auto: executions of a function or loop before it is compiled at O2")
    p.add_argument("--max-output", type=_count, metavar="N",
                   help="bytes of guest output (with --json) plus LOG records zjit keeps per run "
                        "(default 64 MiB); past it the run traps HOST. Output streamed to stdout is not counted")


def _print_warning(warning: AsmWarning) -> None:
    from zjit.cli._tooling import print_warning

    print_warning(warning)


def trap_line(trap: Trap) -> str:
    """The one-line trap diagnostic: ``zjit: trap: KIND at pc=0x.. [file:line]...``."""
    text = f"zjit: trap: {trap.kind.name} at pc={trap.pc:#x}"
    if trap.source:
        text += f" [{trap.source}]"
    if trap.address is not None:
        text += f": address {trap.address:#x}, length {trap.length}"
    if trap.cause is not None:
        text += f": {type(trap.cause).__name__}: {trap.cause}"
    return text


def main(args: argparse.Namespace | SimpleNamespace) -> int:
    """Load, instantiate and run; map the outcome to the exit status."""
    from zjit.machine import DEFAULT
    from zjit.policy import Policy
    from zjit.runtime import Engine

    stdin: BinaryIO = sys.stdin.buffer
    if args.stdin is not None:
        try:
            stdin = open(args.stdin, "rb")  # noqa: SIM115 - closed at exit
        except OSError as exc:
            sys.stderr.write(f"zjit: error: USAGE: cannot read --stdin {args.stdin}: {exc.strerror or exc}\n")
            return EXIT_USAGE
    image = None
    try:
        options: dict[str, object] = {"tier": args.tier}
        if args.tier_threshold is not None:
            options["tier_threshold"] = args.tier_threshold
        if args.max_output is not None:
            options["max_output_bytes"] = args.max_output
        policy = Policy(fuel=args.fuel, mem_size=args.mem_size, timeout=args.timeout, **options)  # type: ignore[arg-type]
        engine = Engine(policy, backend=args.engine)
        from zjit.container.detect import load_image  # what engine.load(path) would call

        image = load_image(args.module, format=args.format, warn=_print_warning)
        module = engine.load(image)
        if args.call is not None and args.call not in module.exports:
            from zjit.errors import PolicyError
            raise PolicyError("NO_EXPORT", f"module has no export named {args.call!r}",
                              path=f"export {args.call}")
        inst = module.instantiate(stdin=stdin, stdout=None if args.json else sys.stdout.buffer,
                                  log=DEFAULT)
    except ZjitError as err:
        return _rejected(err, args, None if image is None else image.debug)

    # Ctrl-C: the first stops the guest with a TIMEOUT trap (exit 1), a second
    # raises KeyboardInterrupt (exit 130); the API does it (zjit/sigint.py).
    registers = dict(args.reg or ())
    try:
        result = inst.call(args.call, **registers) if args.call is not None else inst.run(**registers)
    finally:
        if args.stdin is not None:
            stdin.close()
    return _report(result, args.json)


def _rejected(err: ZjitError, args: argparse.Namespace | SimpleNamespace, debug: Mapping[int, DebugLine] | None) -> int:
    """Report a rejected module: ``zjit: rejected: ...`` lines on stderr (every error
    of an assembly source or of the verifier, at most 20) and, with ``--json``, the
    errors as JSON on stdout."""
    from zjit.cli._tooling import errors_json, shown_errors

    errors, more = shown_errors(err)
    sys.stderr.write("".join(f"zjit: rejected: {e}\n" for e in errors))
    if more:
        sys.stderr.write(f"zjit: rejected: ... {more} more error(s)\n")
    if args.json:
        import json

        doc = {"file": args.module, "status": "rejected", **errors_json(err, debug or {})}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return EXIT_REJECTED


def _report(result: Result, as_json: bool) -> int:
    if as_json:
        import json

        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        sys.stdout.flush()
    if result.trap is None:
        return EXIT_OK
    if isinstance(result.trap.cause, BrokenPipeError):
        # stdout was closed by the reader: silence Python's flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.stderr.write(trap_line(result.trap) + "\n")
    sys.stderr.write("".join(f"zjit:   {line}\n" for line in result.trap.backtrace_lines()))
    return EXIT_TRAP
