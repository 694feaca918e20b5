"""Kernel run times: C, zjit and Wasmtime side by side, plus zjit's compile,
cache-hit and interpreter figures per kernel.

Every timed side is a *runner* ``(n, reps) -> (checksum, seconds)`` whose timed
region is the kernel run only: the C harness times the kernel call inside its
process; zjit times ``Instance.run()`` of an instance loaded and warmed up
beforehand; Wasmtime times the call of ``main`` on an instance made beforehand.
Runs go in rounds, one run of every side per round, so a burst of load on the
shared machine hits all sides alike; the best of the rounds counts (the median is
kept too). Every checksum is compared with C's.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernels import MEM_SIZE, Kernel, compile_c, run_c, set_params
from zjit_configs import ZjitConfig, has_tiers, opt_config, tier_configs

import zjit
from zjit.asm import assemble

BIG_FUEL = 1 << 62
"""Fuel for metered runs: never runs out, so the count is exact."""
Runner = Callable[[int, int], tuple[int, float]]


@dataclass(slots=True)
class Side:
    """One timed configuration of a kernel and its timings."""

    name: str
    run: Runner
    times: list[float] = field(default_factory=list)
    ok: bool = True
    fuel_used: Callable[[], int | None] | None = None


def _timed_run(inst: zjit.Instance, n: int, reps: int) -> tuple[zjit.Result, float]:
    set_params(inst.memory, n, reps)
    t0 = time.perf_counter()
    result = inst.run()
    return result, time.perf_counter() - t0


def _instance(policy: zjit.Policy, image: zjit.ModuleImage, backend: str = "jit") -> zjit.Instance:
    inst = zjit.Engine(policy, backend=backend).load(image).instantiate(log=None)
    return inst


class ZjitRunner:
    """Times ``Instance.run()``; a trap counts as a wrong checksum."""

    def __init__(self, inst: zjit.Instance, warm_up: tuple[int, int]) -> None:
        self.inst = inst
        self.last: zjit.Result | None = None
        _timed_run(inst, *warm_up)  # first touch of guest memory pages, tier-up state

    def __call__(self, n: int, reps: int) -> tuple[int, float]:
        result, seconds = _timed_run(self.inst, n, reps)
        self.last = result
        return (-1 if result.trap is not None else result.reg("HL")), seconds

    def fuel_used(self) -> int | None:
        """Guest instructions of the last run (fuel is one per instruction)."""
        if self.last is None or self.last.fuel_left is None:
            return None
        return BIG_FUEL - self.last.fuel_left


def measure_interp(k: Kernel, image: zjit.ModuleImage, c_small: int, errors: list[str]) -> dict[str, Any]:
    """Interpreter at the reduced size: time (fuel off), instruction count (fuel on)."""
    n, reps = k.small
    inst = _instance(zjit.Policy(mem_size=MEM_SIZE), image, "interp")
    _timed_run(inst, min(n, 64), 1)  # warm-up
    seconds = math.inf
    result: zjit.Result | None = None
    for _ in range(2):
        result, dt = _timed_run(inst, n, reps)
        seconds = min(seconds, dt)
    assert result is not None
    ok = result.trap is None and result.reg("HL") == c_small
    if not ok:
        errors.append(f"{k.name}: interp: {result.trap or result.reg('HL')} != C {c_small}")
    metered = _instance(zjit.Policy(mem_size=MEM_SIZE, fuel=BIG_FUEL), image, "interp")
    mresult, mseconds = _timed_run(metered, n, reps)
    count = BIG_FUEL - (mresult.fuel_left or 0)
    return {"n": n, "reps": reps, "seconds": seconds, "seconds_fuel": mseconds, "instructions": count,
            "ips": count / seconds, "checksum_ok": ok}


def jit_loads(image: zjit.ModuleImage, cache_dir: Path) -> dict[str, Any]:
    """Cold compile (cache off, O2) and cache-hit load of a new Engine (best of 3)."""
    o2 = opt_config(2)
    cold = zjit.Engine(o2.policy(mem_size=MEM_SIZE, use_cache=False), backend="jit")
    t0 = time.perf_counter()
    cold.load(image)
    compile_s = time.perf_counter() - t0
    policy = o2.policy(mem_size=MEM_SIZE, cache_dir=cache_dir)
    zjit.Engine(policy, backend="jit").load(image)  # populate the disk cache
    hits = []
    for _ in range(3):
        engine = zjit.Engine(policy, backend="jit")
        t0 = time.perf_counter()
        engine.load(image)
        hits.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "cache_load_s": min(hits)}


def zjit_sides(image: zjit.ModuleImage, cache_dir: Path, warm_up: tuple[int, int]) -> list[Side]:
    """O2 fuel off and on, then the tiers (when this zjit has them)."""
    o2 = opt_config(2)
    sides = []
    for name, config, fuel in (("zjit O2", o2, None), ("zjit O2 fuel", o2, BIG_FUEL),
                               *((f"zjit {c.name}", c, None) for c in tier_configs())):
        assert isinstance(config, ZjitConfig)
        runner = ZjitRunner(_instance(config.policy(mem_size=MEM_SIZE, cache_dir=cache_dir, fuel=fuel), image),
                            warm_up)
        sides.append(Side(name, runner, fuel_used=runner.fuel_used if fuel else None))
    return sides


TIER_UP_SLACK = 1.15
"""A run under ``tier="auto"`` counts as at O2 speed within this factor of O2's best."""
TIER_UP_LIMIT_S = 10.0
"""How long :func:`time_to_o2` keeps running a kernel before it gives up."""


def time_to_o2(image: zjit.ModuleImage, n: int, reps: int, o2_best: float, expected: int,
               errors: list[str], label: str) -> dict[str, Any]:
    """``tier="auto"`` from a cold load (a new Engine, cache off): the kernel run
    back to back from the start of ``Engine.load``; the time from there to the
    end of the first run within :data:`TIER_UP_SLACK` of ``o2_best`` (None when
    no run got there within :data:`TIER_UP_LIMIT_S`), and the runs it took."""
    policy = zjit.Policy(tier="auto", mem_size=MEM_SIZE, use_cache=False)
    t0 = time.perf_counter()
    inst = zjit.Engine(policy, backend="jit").load(image).instantiate(log=None)
    load_s = time.perf_counter() - t0
    runs: list[float] = []
    while True:
        result, seconds = _timed_run(inst, n, reps)
        runs.append(seconds)
        elapsed = time.perf_counter() - t0
        if result.trap is not None or result.reg("HL") != expected:
            errors.append(f"{label}: tier=auto from a cold load: {result.trap or result.reg('HL')} != C {expected}")
            return {"load_s": load_s, "reached_s": None, "runs": runs}
        if seconds <= TIER_UP_SLACK * o2_best:
            return {"load_s": load_s, "reached_s": elapsed, "runs": runs}
        if elapsed > TIER_UP_LIMIT_S:
            return {"load_s": load_s, "reached_s": None, "runs": runs}


def wasm_sides(k: Kernel, engines: dict[str, Any], warm_up: tuple[int, int]) -> list[Side]:
    """One side per Wasmtime configuration (none when wasmtime is missing)."""
    from wasm_kernels import WasmKernel

    sides = []
    for config, engine in engines.items():
        wk = WasmKernel(k, engine, config)
        wk.run(*warm_up)  # as for zjit
        sides.append(Side(f"wasmtime {config}", wk.run, fuel_used=(lambda w=wk: w.fuel_used)
                          if config == "fuel" else None))
    return sides


def run_rounds(sides: list[Side], n: int, reps: int, trials: int, expected: int, errors: list[str],
               label: str) -> None:
    """``trials`` rounds, one run of every side per round; checksums against ``expected``."""
    for _ in range(trials):
        for side in sides:
            checksum, seconds = side.run(n, reps)
            side.times.append(seconds)
            if checksum != expected and side.ok:
                side.ok = False
                errors.append(f"{label}: {side.name}: checksum {checksum} != C {expected}")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


RATIOS: dict[str, tuple[str, str]] = {
    "zjit/c": ("zjit O2", "c"),
    "zjit/wasmtime": ("zjit O2", "wasmtime default"),
    "zjit/wasmtime_same_safety": ("zjit O2", "wasmtime same_safety"),
    "zjit_fuel/zjit": ("zjit O2 fuel", "zjit O2"),
    "zjit_fuel/wasmtime_fuel": ("zjit O2 fuel", "wasmtime fuel"),
    "wasmtime_fuel/wasmtime": ("wasmtime fuel", "wasmtime default"),
    "wasmtime/c": ("wasmtime default", "c"),
    "zjit_baseline/zjit": ("zjit tier=baseline", "zjit O2"),
    "zjit_auto/zjit": ("zjit tier=auto", "zjit O2"),
}
"""Ratio name -> (numerator side, denominator side), of best times; a ratio is
reported when both sides were measured."""


def measure_kernel(k: Kernel, trials: int, build: Path, cache_dir: Path, jit: bool,
                   wasm_engines: dict[str, Any], errors: list[str], size: tuple[int, int] | None = None,
                   interp: bool = True) -> dict[str, Any]:
    """Every measurement of one kernel at ``size`` (default: its full size)."""
    n, reps = size or k.full
    exe = compile_c(k, build)
    image = assemble(k.source(), k.asm_path.name)
    row: dict[str, Any] = {"name": k.name, "what": k.what, "full": [n, reps], "small": list(k.small)}
    if interp:
        c_small, _ = run_c(exe, *k.small, 1)
        row["interp"] = measure_interp(k, image, c_small, errors)
    expected, _ = run_c(exe, n, reps, 1)
    sides = [Side("c", lambda n, reps: run_c(exe, n, reps, 2))]  # two calls per process: the second is warm
    warm_up = (min(n, 64), 1)  # fib_rec's N is a recursion depth: never above the size measured
    if jit:
        row["jit"] = jit_loads(image, cache_dir)
        sides += zjit_sides(image, cache_dir, warm_up)
    sides += wasm_sides(k, wasm_engines, warm_up)
    run_rounds(sides, n, reps, trials, expected, errors, k.name)
    runs: dict[str, Any] = {}
    for side in sides:
        runs[side.name] = {"seconds": min(side.times), "median_s": statistics.median(side.times),
                           "all_s": side.times, "checksum_ok": side.ok}
        if side.fuel_used is not None:
            runs[side.name]["fuel_used"] = side.fuel_used()
    row["checksum"] = expected
    row["runs"] = runs
    best = {name: r["seconds"] for name, r in runs.items()}
    if jit and "zjit O2" in best and has_tiers():
        row["tier_up"] = time_to_o2(image, n, reps, best["zjit O2"], expected, errors, k.name)
    row["ratios"] = {name: _ratio(best.get(a), best.get(b)) for name, (a, b) in RATIOS.items()
                     if a in best and b in best}
    j = row.get("jit")
    count = runs.get("zjit O2 fuel", {}).get("fuel_used")
    if j is not None and count:
        j["instructions"] = count
        j["ips"] = count / best["zjit O2"]
        if interp:
            row["interp"]["est_full_s"] = count / row["interp"]["ips"]
            j["speedup_vs_interp"] = row["interp"]["est_full_s"] / best["zjit O2"]
    return row


def geomean(values: list[float]) -> float | None:
    """Geometric mean (None for no values)."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometric mean of every ratio over the kernels that have it."""
    out: dict[str, Any] = {}
    for name in RATIOS:
        values = [r["ratios"][name] for r in rows if r["ratios"].get(name) is not None]
        if values:
            out[name] = geomean(values)
    speedups = [r["jit"]["speedup_vs_interp"] for r in rows if r.get("jit") and "speedup_vs_interp" in r["jit"]]
    if speedups:
        out["zjit_speedup_vs_interp"] = geomean(speedups)
    return out


def warm_up_compiler() -> float:
    """Compile a trivial module once so per-kernel compile times exclude one-time
    set-up (LLVM initialisation, compile workers); returns that first compile's time."""
    image = assemble("main:\n    RET\n", "warm-up.s")
    t0 = time.perf_counter()
    zjit.Engine(opt_config(2).policy(use_cache=False), backend="jit").load(image)
    return time.perf_counter() - t0
