"""``zjit run MODULE``: run the entry (or an export); guest output alone on stdout.

Guest input comes from stdin (or ``--stdin FILE``) and is streamed; guest output
is streamed to stdout; LOG records and diagnostics go to stderr. Exit status:
0 normal end, 1 trap, 2 usage error, 3 module rejected. Only the chosen backend
is imported, so ``--engine interp`` never loads the JIT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING

from zjit.cli import EXIT_OK, EXIT_REJECTED, EXIT_TRAP, EXIT_USAGE
from zjit.errors import ZjitError

if TYPE_CHECKING:
    from types import FrameType
    from typing import BinaryIO

    from zjit.result import Result, Trap


def _count(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _size(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    from zjit.runtime import BACKENDS

    p.add_argument("module", metavar="MODULE", help=".zasm.bin, ROM, module.json or raw code")
    p.add_argument("--engine", choices=sorted(BACKENDS), default="jit",
                   help="execution engine (default: jit)")
    p.add_argument("--fuel", type=_count, metavar="N", help="meter execution: N instructions' worth of fuel")
    p.add_argument("--mem-size", type=_size, metavar="N", help="guest memory size in bytes")
    p.add_argument("--stdin", metavar="FILE", help="guest input from FILE instead of stdin")
    p.add_argument("--json", action="store_true",
                   help="print the whole result as JSON on stdout (guest output inside it)")
    p.add_argument("--call", metavar="NAME", help="run the export NAME instead of the entry")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="wall-clock limit per run, in seconds")


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


def main(args: argparse.Namespace) -> int:
    """Load, instantiate and run; map the outcome to the exit status."""
    from zjit.machine import DEFAULT
    from zjit.policy import Policy
    from zjit.runtime import Engine

    stdin: BinaryIO = sys.stdin.buffer
    if args.stdin is not None:
        try:
            stdin = open(args.stdin, "rb")  # noqa: SIM115 - closed at exit
        except OSError as exc:
            sys.stderr.write(f"zjit: error: cannot read --stdin {args.stdin}: {exc.strerror or exc}\n")
            return EXIT_USAGE
    try:
        policy = Policy(fuel=args.fuel, mem_size=args.mem_size, timeout=args.timeout)
        engine = Engine(policy, backend=args.engine)
        module = engine.load(args.module)
        if args.call is not None and args.call not in module.exports:
            from zjit.errors import PolicyError
            raise PolicyError("NO_EXPORT", f"module has no export named {args.call!r}",
                              path=f"export {args.call}")
        inst = module.instantiate(stdin=stdin, stdout=None if args.json else sys.stdout.buffer,
                                  log=DEFAULT)
    except ZjitError as err:
        sys.stderr.write(f"zjit: rejected: {err}\n")
        return EXIT_REJECTED

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second ^C aborts
        inst.interrupt()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = inst.call(args.call) if args.call is not None else inst.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        if args.stdin is not None:
            stdin.close()
    return _report(result, args.json)


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
    return EXIT_TRAP
