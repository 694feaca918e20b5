"""The ``zjit fuzz`` loop: generate, compare, count, save reproducers.

Program ``i`` of a campaign with seed ``S`` is ``random_program(f"{S}:{i}")``, so a
campaign is deterministic for its seed: a longer run only adds programs. Every
failure (engines disagree, an engine crashes, or a generated program is
rejected) is saved under ``out_dir`` as a readable reproducer, shrunk when
possible, next to the original.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from zjit.errors import ZjitError
from zjit.isa import TrapKind

from . import reproducer
from .generators import GenConfig, random_program
from .oracles import Mismatch, compare_detailed, plan_for
from .program import GenProgram
from .shrink import shrink

GUARD_SECONDS = 10.0
"""Wall-clock limit per run: an engine stuck in a loop shows up as a TIMEOUT
mismatch instead of hanging the campaign."""


@dataclass
class CampaignStats:
    """Counters of one campaign. ``runs``/``ok``/``traps`` count the reference
    engine's runs; ``history`` holds ``digest outcome`` per program."""

    seed: int
    engines: tuple[str, ...]
    programs: int = 0
    runs: int = 0
    ok: int = 0
    traps: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0
    crashes: int = 0
    invalid: int = 0
    elapsed: float = 0.0
    failures: list[Path] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when anything needs a look (mismatch, crash or invalid program)."""
        return bool(self.mismatches or self.crashes or self.invalid)

    def line(self) -> str:
        """The progress line."""
        rate = self.programs / self.elapsed if self.elapsed > 0 else 0.0
        traps = " ".join(f"{k}={self.traps[k]}" for k in sorted(self.traps)) or "-"
        return (f"fuzz {self.elapsed:5.1f}s  programs {self.programs} ({rate:.0f}/s)  runs {self.runs}  "
                f"ok {self.ok}  traps {traps}  mismatches {self.mismatches}  crashes {self.crashes}  "
                f"invalid {self.invalid}")


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


def program_for(seed: int, index: int, cfg: GenConfig | None = None) -> GenProgram:
    """Program ``index`` of the campaign with ``seed``."""
    return random_program(f"{seed}:{index}", cfg)


def _record(stats: CampaignStats, program: GenProgram, outcome: str) -> None:
    stats.history.append(f"{program.digest()} {outcome}")


def check_program(
    program: GenProgram,
    engines: Sequence[str],
    stats: CampaignStats,
    out_dir: Path | None,
    stem: str,
    context: Sequence[str],
    shrink_seconds: float,
    progress: _Progress | None = None,
) -> Mismatch | None:
    """Compare one program, update ``stats`` and save a reproducer on failure."""
    stats.programs += 1
    try:
        image = program.image()
        from zjit.verifier import verify

        verify(image, program.policy())
    except ZjitError as exc:
        stats.invalid += 1
        _record(stats, program, f"invalid {exc.code}")
        if out_dir is not None:
            path = reproducer.save(out_dir, stem, program, f"generated program rejected: {exc}", [], (),
                                   [f"{exc.code}: {exc}"], context)
            stats.failures.append(path)
            if progress:
                progress.message(f"zjit fuzz: invalid program saved to {path}")
        return None
    steps = plan_for(image)
    guard = program.policy(timeout=GUARD_SECONDS)
    mismatch, runs = compare_detailed(program, engines, policy=guard, image=image, steps=steps)
    ref = runs[0]
    stats.runs += len(ref.results)
    for res in ref.results:
        if res.trap is None:
            stats.ok += 1
        else:
            stats.traps[res.trap.kind.name] += 1
    _record(stats, program, " ".join(r.summary() for r in runs))
    if mismatch is None:
        if any(r.crashed for r in runs):  # every engine crashed the same way
            stats.crashes += 1
        elif ref.error is not None:
            stats.invalid += 1
        return None
    if any(r.crashed for r in runs):
        stats.crashes += 1
    else:
        stats.mismatches += 1
    if out_dir is not None:
        title = "engines disagree: " + " vs ".join(r.engine for r in runs)
        path = _save_failure(out_dir, stem, program, engines, title, mismatch, context, shrink_seconds)
        stats.failures.append(path)
        if progress:
            progress.message(f"zjit fuzz: MISMATCH saved to {path}\n" + mismatch.report())
    return mismatch


def _save_failure(out_dir: Path, stem: str, program: GenProgram, engines: Sequence[str], title: str,
                  mismatch: Mismatch, context: Sequence[str], shrink_seconds: float) -> Path:
    """Save ``<stem>.s``: shrunk when shrinking helped (the original then goes to
    ``<stem>.orig.s``), else the original."""
    timed_out = any(res.trap is not None and res.trap.kind is TrapKind.TIMEOUT
                    for r in mismatch.runs for res in r.results)
    if shrink_seconds > 0 and not timed_out:
        small = shrink(program, engines, shrink_seconds)
        if small.asm != program.asm:
            sm, sruns = compare_detailed(small, engines, policy=small.policy(timeout=GUARD_SECONDS))
            if sm is not None:
                orig = reproducer.save(out_dir, stem + ".orig", program, title, mismatch.runs,
                                       mismatch.steps, mismatch.differences, context)
                before, after = program.instruction_count(), small.instruction_count()
                note = [*context, f"shrunk from {before} to {after} instructions; original: {orig.name}"]
                return reproducer.save(out_dir, stem, small, title, sruns, sm.steps, sm.differences, note)
    return reproducer.save(out_dir, stem, program, title, mismatch.runs, mismatch.steps,
                           mismatch.differences, context)


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
) -> CampaignStats:
    """Run programs ``seed:0, seed:1, ...`` until ``seconds`` pass (or ``count``
    programs ran, or ``max_failures`` failures were saved)."""
    stats = CampaignStats(seed=seed, engines=tuple(engines))
    out = Path(out_dir) if out_dir is not None else None
    shown = _Progress(progress)
    start = time.monotonic()
    deadline = start + seconds
    index = 0
    while True:
        if count is not None and index >= count:
            break
        if count is None and time.monotonic() >= deadline:
            break
        if len(stats.failures) >= max_failures:
            shown.message(f"zjit fuzz: stopping after {max_failures} failures")
            break
        program = program_for(seed, index, cfg)
        stem = f"fail-{seed}-{index}"
        where = out / f"{stem}.s" if out is not None else Path(f"{stem}.s")
        context = [f"campaign seed {seed}, program {index} ({program.intent})",
                   f"replay: zjit fuzz --replay {where} --engines {','.join(engines)}"]
        check_program(program, engines, stats, out, stem, context, shrink_seconds, shown)
        index += 1
        stats.elapsed = time.monotonic() - start
        shown.update(stats)
    stats.elapsed = time.monotonic() - start
    shown.done(stats)
    return stats


def replay(path: Path | str, engines: Sequence[str]) -> tuple[GenProgram, Mismatch | None]:
    """Re-run a reproducer file on ``engines``."""
    program = reproducer.load_reproducer(path)
    mismatch, _ = compare_detailed(program, engines, policy=program.policy(timeout=GUARD_SECONDS))
    return program, mismatch
