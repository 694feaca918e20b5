"""Checking campaign programs: generate program ``i`` of a seed, compare it on
the engines, count the outcome and save a reproducer on failure. Used by
:func:`zjit.fuzz.campaign.run_campaign`, in this process or in the worker
processes of :mod:`zjit.fuzz.parallel`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    interrupted: bool = False
    """Stopped by Ctrl-C (KeyboardInterrupt): the counters cover the programs
    finished before it."""

    @property
    def failed(self) -> bool:
        """True when anything needs a look (mismatch, crash or invalid program)."""
        return bool(self.mismatches or self.crashes or self.invalid)

    def add(self, other: CampaignStats) -> None:
        """Count ``other``'s programs, runs, outcomes and failures in (not its history)."""
        self.programs += other.programs
        self.runs += other.runs
        self.ok += other.ok
        self.traps.update(other.traps)
        self.mismatches += other.mismatches
        self.crashes += other.crashes
        self.invalid += other.invalid
        self.failures.extend(other.failures)

    def line(self) -> str:
        """The progress line."""
        rate = self.programs / self.elapsed if self.elapsed > 0 else 0.0
        traps = " ".join(f"{k}={self.traps[k]}" for k in sorted(self.traps)) or "-"
        return (f"fuzz {self.elapsed:5.1f}s  programs {self.programs} ({rate:.0f}/s)  runs {self.runs}  "
                f"ok {self.ok}  traps {traps}  mismatches {self.mismatches}  crashes {self.crashes}  "
                f"invalid {self.invalid}")


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
    messages: list[str] | None = None,
) -> Mismatch | None:
    """Compare one program, update ``stats`` and save a reproducer on failure
    (what to tell the user about it is appended to ``messages``)."""
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
            if messages is not None:
                messages.append(f"zjit fuzz: invalid program saved to {path}")
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
        if messages is not None:
            messages.append(f"zjit fuzz: MISMATCH saved to {path}\n" + mismatch.report())
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


@dataclass(frozen=True)
class CampaignPlan:
    """What each program of a campaign is checked with (worker processes get a copy)."""

    seed: int
    engines: tuple[str, ...]
    out_dir: Path | None
    count: int | None
    deadline: float
    """:func:`time.monotonic` value after which no program starts (when ``count`` is None);
    the clock is system-wide, so worker processes share it."""
    cfg: GenConfig | None = None
    shrink_seconds: float = 20.0


@dataclass
class ProgramRecord:
    """The outcome of program ``index``: its counters and history line, and what
    to tell the user (saved reproducers)."""

    index: int
    stats: CampaignStats
    messages: list[str]


def check_one(plan: CampaignPlan, index: int) -> ProgramRecord:
    """Generate and check program ``index`` of ``plan``."""
    program = program_for(plan.seed, index, plan.cfg)
    stem = f"fail-{plan.seed}-{index}"
    where = plan.out_dir / f"{stem}.s" if plan.out_dir is not None else Path(f"{stem}.s")
    context = [f"campaign seed {plan.seed}, program {index} ({program.intent})",
               f"replay: zjit fuzz --replay {where} --engines {','.join(plan.engines)}"]
    stats = CampaignStats(seed=plan.seed, engines=plan.engines)
    messages: list[str] = []
    check_program(program, plan.engines, stats, plan.out_dir, stem, context, plan.shrink_seconds, messages)
    return ProgramRecord(index, stats, messages)


def program_records(plan: CampaignPlan, first: int = 0, step: int = 1) -> Generator[ProgramRecord, None, None]:
    """Check programs ``first, first + step, ...`` until ``plan.count`` is reached
    or, without a count, until its deadline."""
    index = first
    while index < plan.count if plan.count is not None else time.monotonic() < plan.deadline:
        yield check_one(plan, index)
        index += step
