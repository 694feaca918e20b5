"""The ``zjit fuzz`` loop: generate, compare, count, save reproducers.

Program ``i`` of a campaign with seed ``S`` is ``random_program(f"{S}:{i}")``, so a
campaign is deterministic for its seed: a longer run only adds programs. Every
failure (engines disagree, an engine crashes, or a generated program is
rejected) is saved under ``out_dir`` as a readable reproducer, shrunk when
possible, next to the original.

With ``jobs`` > 1 the programs are dealt out to worker processes
(:mod:`zjit.fuzz.parallel`): program ``i`` goes to worker ``i mod jobs`` and is
still ``random_program(f"{S}:{i}")``; results are merged in program order, so a
``count`` campaign gives the same statistics and history whatever ``jobs``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TextIO

from . import reproducer
from .checking import GUARD_SECONDS, CampaignPlan, CampaignStats, ProgramRecord, program_for, program_records
from .generators import GenConfig
from .oracles import Mismatch, compare_detailed
from .program import GenProgram

__all__ = ["CampaignStats", "program_for", "replay", "run_campaign"]


class _Progress:
    """Live progress on a stream: rewritten in place on a terminal, periodic lines otherwise."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        self.interval = 0.2 if self.tty else 5.0
        self.last = 0.0

    def update(self, stats: CampaignStats, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\x1b[K" + stats.line())
        else:
            self.stream.write(stats.line() + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.stream is None:
            return
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()

    def done(self, stats: CampaignStats) -> None:
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(stats.line() + "\n")
        self.stream.flush()


def run_campaign(
    seconds: float = 60.0,
    seed: int = 0,
    engines: Sequence[str] = ("interp", "jit"),
    out_dir: Path | str | None = "fuzz-failures",
    count: int | None = None,
    progress: TextIO | None = sys.stderr,
    cfg: GenConfig | None = None,
    shrink_seconds: float = 20.0,
    max_failures: int = 20,
    jobs: int = 1,
) -> CampaignStats:
    """Run programs ``seed:0, seed:1, ...`` until ``seconds`` pass (or ``count``
    programs ran, or ``max_failures`` failures were saved), in ``jobs`` worker
    processes when ``jobs`` > 1 (engines then must be backend names, ``backend-O<n>``
    or the fakes of :mod:`zjit.fuzz.fakes`: a worker knows no other factories).

    Ctrl-C (KeyboardInterrupt) ends the campaign early: the statistics of the
    programs finished so far are returned with ``interrupted`` set.
    """
    stats = CampaignStats(seed=seed, engines=tuple(engines))
    start = time.monotonic()
    plan = CampaignPlan(seed, tuple(engines), Path(out_dir) if out_dir is not None else None, count,
                        start + seconds, cfg, shrink_seconds)
    shown = _Progress(progress)
    records: Generator[ProgramRecord, None, None]
    if jobs > 1:
        from .parallel import parallel_records

        records = parallel_records(plan, jobs)
    else:
        records = program_records(plan)
    done: dict[int, ProgramRecord] = {}
    try:
        while len(stats.failures) < max_failures:
            record = next(records, None)
            if record is None:
                break
            done[record.index] = record
            stats.add(record.stats)
            for text in record.messages:
                shown.message(text)
            stats.elapsed = time.monotonic() - start
            shown.update(stats)
        else:
            shown.message(f"zjit fuzz: stopping after {max_failures} failures")
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        records.close()  # stops the worker processes
    ordered = [done[i] for i in sorted(done)]
    stats.history = [line for r in ordered for line in r.stats.history]
    stats.failures = [path for r in ordered for path in r.stats.failures]
    stats.elapsed = time.monotonic() - start
    shown.done(stats)
    return stats


def replay(path: Path | str, engines: Sequence[str]) -> tuple[GenProgram, Mismatch | None]:
    """Re-run a reproducer file on ``engines``."""
    program = reproducer.load_reproducer(path)
    mismatch, _ = compare_detailed(program, engines, policy=program.policy(timeout=GUARD_SECONDS))
    return program, mismatch
