"""Worker processes of a campaign (``zjit fuzz --jobs N``).

Worker ``k`` of ``N`` checks programs ``k, k + N, k + 2N, ...`` of the campaign
(:func:`zjit.fuzz.campaign.program_records`): the seed is not split, the program
indices are dealt out round-robin, and program ``i`` is the same program whatever
``N``. Workers send one :class:`~zjit.fuzz.campaign.ProgramRecord` per program
to the parent, which merges them in program order. Workers are started with the
``spawn`` method (a fresh interpreter: nothing of the parent's threads or JIT
state is inherited) and ignore Ctrl-C: the parent stops them.

A worker that dies (a crash of an engine inside it, for example) ends the
campaign: the program it was checking is saved as a reproducer and counted as a
crash.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_mod
import signal
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from . import reproducer
from .checking import CampaignPlan, CampaignStats, ProgramRecord, program_for, program_records

STOP_GRACE_SECONDS = 2.0
"""How long stopped workers may take to finish their program before they are terminated."""
POLL_SECONDS = 0.5
"""How often the parent checks that its workers are alive while it waits."""


@dataclass(frozen=True)
class _Started:
    worker: int
    index: int


@dataclass(frozen=True)
class _Finished:
    worker: int


@dataclass(frozen=True)
class _Died:
    worker: int


def _drain(out: Any) -> list[Any]:
    items = []
    while True:
        try:
            items.append(out.get(timeout=0.1))
        except queue_mod.Empty:
            return items


def _worker(plan: CampaignPlan, first: int, step: int, out: Any, stop: Any) -> None:
    """Process body: check programs ``first, first + step, ...`` until done or stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    from .fakes import register_fakes

    register_fakes()
    for record in program_records(plan, first, step):
        out.put(record)
        if stop.is_set():
            break
        out.put(_Started(first, record.index + step))
    out.put(_Finished(first))
    out.close()
    out.join_thread()  # everything sent before the process exits


def _died(plan: CampaignPlan, worker: int, index: int, exitcode: int | None) -> ProgramRecord:
    """The record of a program whose worker died while checking it."""
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit status {exitcode}"
    stats = CampaignStats(seed=plan.seed, engines=plan.engines, programs=1, crashes=1)
    program = program_for(plan.seed, index, plan.cfg)
    stats.history.append(f"{program.digest()} worker died ({how})")
    text = f"zjit fuzz: worker {worker} died ({how}) while checking program {index}"
    if plan.out_dir is not None:
        stem = f"fail-{plan.seed}-{index}"
        context = [f"campaign seed {plan.seed}, program {index} ({program.intent})",
                   f"replay: zjit fuzz --replay {plan.out_dir / (stem + '.s')} --engines {','.join(plan.engines)}"]
        path = reproducer.save(plan.out_dir, stem, program, f"a fuzz worker process died ({how})", [], (),
                               [f"the worker running {', '.join(plan.engines)} died ({how})"], context)
        stats.failures.append(path)
        text += f"; saved to {path}"
    return ProgramRecord(index, stats, [text])


def parallel_records(plan: CampaignPlan, jobs: int) -> Generator[ProgramRecord, None, None]:
    """The records of ``plan``'s programs, checked by ``jobs`` worker processes, in
    the order they finish. Closing the generator stops the workers."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(plan, k, jobs, out, stop), name=f"zjit-fuzz-{k}", daemon=True)
             for k in range(jobs)]
    current = {k: k for k in range(jobs)}  # worker -> index of the program it is checking
    running = set(range(jobs))
    try:
        for p in procs:
            p.start()
        while running:
            try:
                items = [out.get(timeout=POLL_SECONDS)]
            except queue_mod.Empty:
                dead = [k for k in sorted(running) if not procs[k].is_alive()]
                if not dead:
                    continue
                items = _drain(out)  # what a worker sent just before it exited
                items.append(_Died(dead[0]))
            for item in items:
                if isinstance(item, ProgramRecord):
                    yield item
                elif isinstance(item, _Started):
                    current[item.worker] = item.index
                elif isinstance(item, _Finished):
                    running.discard(item.worker)
                elif item.worker in running:  # _Died: not finished after all
                    yield _died(plan, item.worker, current[item.worker], procs[item.worker].exitcode)
                    return
    finally:
        stop.set()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for p in procs:
            if p.pid is not None:
                p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        out.close()
