"""``zjit fuzz``: differential fuzzing campaign (or replay of one reproducer)."""

from __future__ import annotations

import argparse
import os
import sys

from zjit.cli._values import size_arg
from zjit.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED, EXIT_TRAP, EXIT_USAGE


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the options of ``zjit fuzz``."""
    p.add_argument("--seconds", type=float, default=60.0, help="campaign length (default 60)")
    p.add_argument("--seed", type=int, default=None,
                   help="campaign seed (default: random, printed so the run can be repeated)")
    p.add_argument("--engines", default="interp,jit",
                   help="comma-separated engines, the first is the reference (default interp,jit); "
                        "'jit-O0' picks an optimisation level, 'broken-reg' etc. are self-test engines")
    p.add_argument("--out", default="fuzz-failures", help="directory for reproducers (default ./fuzz-failures)")
    p.add_argument("--count", type=int, default=None, help="run exactly this many programs (ignores --seconds)")
    p.add_argument("--shrink-seconds", type=float, default=20.0,
                   help="time spent shrinking each failure (0 disables; default 20)")
    p.add_argument("--replay", metavar="FILE", default=None, help="re-run one reproducer and show the differences")
    p.add_argument("--quiet", action="store_true", help="no progress line, only the summary")
    p.add_argument("--jobs", type=size_arg, default=None, metavar="N",
                   help="worker processes (default: one per available core); program i runs in "
                        "worker i mod N, so --count results do not depend on N")


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _engines(text: str) -> list[str] | None:
    from zjit.errors import PolicyError
    from zjit.fuzz.fakes import register_fakes
    from zjit.fuzz.oracles import make_engine
    from zjit.policy import Policy

    from ._tooling import fail

    register_fakes()
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        fail("--engines needs at least one engine", "fuzz")
        return None
    for name in names:
        try:
            make_engine(name, Policy())
        except (PolicyError, ValueError) as exc:
            fail(f"engine {name!r} is not available: {exc}", "fuzz")
            return None
    return names


def main(args: argparse.Namespace) -> int:
    """Run the campaign; 0 when every engine agreed, 1 on any failure, 130 when
    Ctrl-C stopped it before any failure was found."""
    from ._tooling import fail

    engines = _engines(args.engines)
    if engines is None:
        return EXIT_USAGE
    if args.replay is not None:
        return _replay(args.replay, engines)
    from zjit.fuzz.campaign import run_campaign

    if args.count is not None and args.count < 0 or args.seconds < 0:
        fail("--count and --seconds must not be negative", "fuzz")
        return EXIT_USAGE
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        fail(f"--out {args.out} exists and is not a directory", "fuzz")
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    jobs = args.jobs if args.jobs is not None else default_jobs()
    length = f"{args.count} programs" if args.count is not None else f"{args.seconds:g} s"
    sys.stderr.write(f"zjit fuzz: seed {seed}, engines {' vs '.join(engines)}, {length}, "
                     f"{jobs} job{'s' if jobs > 1 else ''}, failures -> {args.out}/\n")
    try:
        stats = run_campaign(
            seconds=args.seconds, seed=seed, engines=engines, out_dir=args.out, count=args.count,
            progress=None if args.quiet else sys.stderr, shrink_seconds=args.shrink_seconds, jobs=jobs,
        )
    except OSError as exc:
        from zjit.errors import ContainerError

        from ._tooling import report

        sys.stderr.write("\n")
        report(ContainerError("BAD_PATH", f"cannot write a reproducer: {exc.strerror or exc}", path=args.out),
               args.out)
        return EXIT_REJECTED
    if args.quiet:
        sys.stderr.write(stats.line() + "\n")
    for path in stats.failures:
        sys.stderr.write(f"zjit fuzz: reproducer {path}\n")
    if stats.failed:
        sys.stderr.write(f"zjit fuzz: FAILED (repeat with --seed {seed})\n")
        return EXIT_TRAP
    if stats.interrupted:
        sys.stderr.write(f"zjit: fuzz: INTERRUPTED: stopped by Ctrl-C after {stats.programs} programs, "
                         f"no failure so far (repeat with --seed {seed})\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _replay(path: str, engines: list[str]) -> int:
    """Re-run one reproducer; errors are printed as the other commands do
    (``FILE: CODE: message``, exit 3)."""
    from zjit.errors import AsmError, ContainerError, ZjitError
    from zjit.fuzz.campaign import replay
    from zjit.fuzz.reproducer import ReproducerError

    from ._tooling import report

    try:
        program, mismatch = replay(path, engines)
    except OSError as exc:
        report(ContainerError("BAD_PATH", f"cannot read {path}: {exc.strerror or exc}", path=path), path)
        return EXIT_REJECTED
    except UnicodeDecodeError as exc:
        report(AsmError("ASM_SYNTAX", f"reproducer is not UTF-8 text (byte {exc.start})", path=path),
               path)
        return EXIT_REJECTED
    except ReproducerError as exc:
        report(AsmError("ASM_SYNTAX", f"reproducer header: {exc}", path=path), path)
        return EXIT_REJECTED
    except ZjitError as exc:
        report(exc, path)
        return EXIT_REJECTED
    if mismatch is None:
        sys.stderr.write(f"zjit fuzz: {' and '.join(engines)} agree on {path}\n")
        return EXIT_OK
    sys.stdout.write(mismatch.report() + "\n")
    return EXIT_TRAP
