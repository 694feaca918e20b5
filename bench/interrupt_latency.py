"""Interrupt latency of the jit engine: from ``Instance.interrupt()`` (called from
another thread) to ``Instance.run()`` returning TIMEOUT, for four loop shapes.

A worker thread runs an endless guest loop; the main thread waits until the run
is under way, takes the time, calls ``interrupt()`` and joins the worker, which
takes the time as soon as ``run()`` returns. The figure therefore includes the
thread hand-over (the worker needs the GIL back to return); the ``floor`` row
measures that hand-over alone (an Event set in one thread, a waiting thread
returning in the other). ``Policy(timeout=...)`` bounds every run in case an
interrupt were lost.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from zjit_configs import ZjitConfig, opt_config, tier_configs

import zjit
from zjit.asm import assemble

SAFETY_TIMEOUT = 20.0
"""Seconds after which a run ends by itself (a lost interrupt shows up as this)."""

SHAPES: dict[str, str] = {
    "tight": """
        PUBLIC main
main:   LD BC, 0
loop:   INC BC
        JR loop
""",
    "calls": """
        PUBLIC main
main:   LD BC, 0
loop:   CALL leaf
        CALL leaf
        JR loop
leaf:   INC BC
        ADD64 A, A, BC
        RET
""",
    "memory": """
        PUBLIC main
main:   LD HL, 0x2000
        LD BC, 0
loop:   LD64 A, (HL+8)
        ADD64 A, A, BC
        ST64 (HL+16), A
        ST8 (HL), BC
        INC BC
        JR loop
""",
    "nested": """
        PUBLIC main
main:   LD A, 0
outer:  LD BC, 1000
inner:  ADD64 A, A, BC
        DEC BC
        CPI BC, 0
        JR ne, inner
        INC DE
        JR outer
""",
    "counted": """
        PUBLIC main
main:   LD BC, 0xFFFFFFFF
        LD DE, 3
loop:   MUL64 A, A, DE
        MUL64 A, A, DE
        MUL64 A, A, DE
        MUL64 A, A, DE
        ADD64 A, A, BC
        DEC BC
        CPI BC, 0
        JR ne, loop
        JR main
""",
    "counted memory": """
        PUBLIC main
main:   LD HL, 0x10000
        LD IX, 0x110000
loop:   LD8U A, (HL+0)
        ADD64 DE, DE, A
        ST8 (HL+1), DE
        INC HL
        CP HL, IX
        JR ltu, loop
        JR main
""",
}
"""Endless loops: a tight back edge, guest calls, memory traffic, a loop nest,
and two versioned loops (docs/jit.md), which poll once per chunk: a counted loop
of multiplications (2**32 iterations of it take about a minute, so only the
per-chunk poll ends it in time) and a counted loop over 1 MiB of memory."""
VERSIONED = ("nested", "counted", "counted memory")
"""Shapes whose inner loop is versioned."""


def _latency(inst: zjit.Instance, settle: float) -> tuple[float, str]:
    started = threading.Event()
    box: dict[str, Any] = {}

    def worker() -> None:
        started.set()
        box["result"] = inst.run()
        box["end"] = time.perf_counter()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    started.wait()
    time.sleep(settle)  # let the run get into its loop
    t0 = time.perf_counter()
    inst.interrupt()
    thread.join(SAFETY_TIMEOUT + 10)
    result: zjit.Result = box["result"]
    kind = result.trap.kind.name if result.trap is not None else "none"
    return box["end"] - t0, kind


def _floor(repeats: int, settle: float) -> list[float]:
    """Thread hand-over alone: set an Event a waiting thread returns from."""
    out = []
    for _ in range(repeats):
        go = threading.Event()
        box: dict[str, float] = {}

        def waiter(go: threading.Event = go, box: dict[str, float] = box) -> None:
            go.wait()
            box["end"] = time.perf_counter()

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        time.sleep(settle)
        t0 = time.perf_counter()
        go.set()
        thread.join()
        out.append(box["end"] - t0)
    return out


def _stats(samples: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(samples), "max_s": max(samples), "min_s": min(samples),
            "samples": samples}


def measure(repeats: int = 20, settle: float = 0.02, errors: list[str] | None = None) -> dict[str, Any]:
    """Latency per zjit configuration (O2, then the tiers) and loop shape."""
    errors = errors if errors is not None else []
    configs: list[ZjitConfig] = [opt_config(2), *tier_configs()]
    out: dict[str, Any] = {"repeats": repeats, "floor": _stats(_floor(repeats, settle)), "configs": {}}
    for config in configs:
        rows: dict[str, Any] = {}
        for shape, src in SHAPES.items():
            image = assemble(src, f"{shape}.s")
            policy = config.policy(timeout=SAFETY_TIMEOUT, use_cache=False)
            inst = zjit.Engine(policy, backend="jit").load(image).instantiate(log=None)
            samples = []
            for _ in range(repeats):
                seconds, kind = _latency(inst, settle)
                if kind != "TIMEOUT":
                    errors.append(f"interrupt {config.name} {shape}: run ended with {kind}, not TIMEOUT")
                samples.append(seconds)
            rows[shape] = _stats(samples)
        out["configs"][config.name] = rows
    return out
