"""Baseline loads of large and hostile programs: is the load path linear?

Issue 9 asks for at most 5 ms of CPU per 1,000 guest instructions to runnable
baseline code (verification included), linear up to 1,000,000 instructions and
on the shapes that made the O2-only JIT superlinear: long straight-line code, a
module exporting every instruction, and deeply nested loops. Each program is
assembled outside the timed region and loaded by a new Engine with the cache off
at ``tier="baseline"`` and at ``tier="auto"`` (which loads the same baseline
code and compiles nothing until something is hot); CPU time is of this process
and its children (:mod:`cpu_clock`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cpu_clock import tree_cpu
from gen_modules import bench_program
from zjit.fuzz.hostile import exports, nest, straight

import zjit
from zjit.asm import assemble


def generated(n: int) -> str:
    """A generated program of realistic shape (:func:`gen_modules.bench_program`)."""
    return bench_program("shapes", n).asm


SHAPES: list[tuple[str, Callable[[int], str], int]] = [
    ("straight-line", straight, 40_000),
    ("every instruction exported", exports, 10_000),
    ("nested loops (depth)", nest, 1_000),
    ("generated", generated, 100_000),
    ("generated", generated, 1_000_000),
]
QUICK: list[tuple[str, Callable[[int], str], int]] = [
    ("straight-line", straight, 4_000), ("every instruction exported", exports, 1_000),
    ("nested loops (depth)", nest, 100), ("generated", generated, 10_000),
]
TIERS = ("baseline", "auto")


def measure(quick: bool = False) -> list[dict[str, Any]]:
    """One row per shape: instructions and, per tier, CPU and wall seconds of the load."""
    rows = []
    for name, make, n in QUICK if quick else SHAPES:
        image = assemble(make(n), f"shape-{n}.s")
        mem = 1 << 24 if name == "generated" else 1 << 16
        row: dict[str, Any] = {"shape": name, "n": n, "loads": {}}
        for tier in TIERS:
            engine = zjit.Engine(zjit.Policy(tier=tier, use_cache=False, mem_size=mem), backend="jit")
            c0, w0 = tree_cpu(), time.perf_counter()
            module = engine.load(image)
            row["loads"][tier] = {"cpu_s": tree_cpu() - c0, "wall_s": time.perf_counter() - w0}
            row["instructions"] = len(module.program.instrs)
        rows.append(row)
    return rows
