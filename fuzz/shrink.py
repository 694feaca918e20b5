"""Shrink a failing program by deleting instruction lines while the engines still
disagree (a time-bounded delta-debugging pass over the code lines).

Deleting lines can break the generator's termination guarantees (a removed
counter update makes a loop endless). An unmetered candidate therefore first runs
on the reference engine with a fuel cap and is dropped if it runs out; every
candidate also runs under a wall-clock guard, and one that times out on any
engine is rejected.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from zjit.errors import ZjitError
from zjit.isa import TrapKind

from .oracles import compare_detailed, run_engine
from .program import GenProgram

_DATA_WORDS = ("DB", "DW", "DD", "DQ", "RESB", "ALIGN", "ORG")


def _candidates(lines: Sequence[str]) -> list[int]:
    """Indices of lines that may be deleted: instructions and PUBLIC lines of the code part."""
    out: list[int] = []
    for i, raw in enumerate(lines):
        text = raw.split(";", 1)[0].strip()
        if ":" in text:  # keep labels (and whatever shares their line)
            continue
        if not text:
            continue
        word = text.split()[0].upper()
        if word in _DATA_WORDS:
            break
        out.append(i)
    return out


PRECHECK_FUEL = 100_000
"""Fuel for the endless-loop pre-check of unmetered candidates (generated programs
stay far below it)."""


def _still_fails(program: GenProgram, engines: Sequence[str], guard: float) -> bool:
    try:
        image = program.image()
        from zjit.verifier import verify

        verify(image, program.policy())
    except ZjitError:
        return False
    if program.fuel is None:  # cheap check on the reference that the candidate still ends
        pre = run_engine(engines[0], program, policy=program.policy(fuel=PRECHECK_FUEL, timeout=guard),
                         image=image)
        if pre.error is not None or any(r.trap is not None and r.trap.kind in (TrapKind.FUEL, TrapKind.TIMEOUT)
                                        for r in pre.results):
            return False
    mismatch, runs = compare_detailed(program, engines, policy=program.policy(timeout=guard), image=image)
    if mismatch is None:
        return False
    for r in runs:
        if r.error is not None and not r.crashed:
            return False
        if any(res.trap is not None and res.trap.kind is TrapKind.TIMEOUT for res in r.results):
            return False
    return True


def shrink(program: GenProgram, engines: Sequence[str], seconds: float = 20.0,
           guard: float = 2.0) -> GenProgram:
    """A smaller program that still makes ``engines`` disagree (or ``program`` itself)."""
    deadline = time.monotonic() + seconds
    lines = program.asm.splitlines()
    removable = _candidates(lines)
    chunk = max(1, len(removable) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i = 0
        progressed = False
        while i < len(removable) and time.monotonic() < deadline:
            drop = set(removable[i : i + chunk])
            trial_lines = [line for k, line in enumerate(lines) if k not in drop]
            trial = dataclasses.replace(program, asm="\n".join(trial_lines) + "\n")
            if _still_fails(trial, engines, guard):
                lines = trial_lines
                removable = _candidates(lines)
                progressed = True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    return dataclasses.replace(program, asm="\n".join(lines) + "\n")
