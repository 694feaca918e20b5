"""zjit benchmarks (``make bench``): ZASM kernels on the JIT and the interpreter
against their C twins (gcc -O2), plus compile and start-up costs.

For each kernel, in one run: C time (best of N), JIT cold
compile (cache off), JIT cache-hit load, JIT run time at full size (compilation
excluded, best of N) with fuel off and on, interpreter time at a reduced size
(instructions per second from the fuel count), and the JIT/C ratios; then the
geometric means, the cold compile of a ~1,000-instruction module at O2 and the
time a cache-hit ``zjit run`` spends beyond Python start-up. Prints a table,
writes ``bench/results.json`` and refreshes the results in ``docs/benchmarks.md``.

    python bench/run.py [--quick] [--kernels a,b] [--trials N] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kernels import KERNELS, MEM_SIZE, Kernel, compile_c, run_c, set_params  # noqa: E402
from report import machine_info, render_table, update_docs  # noqa: E402
from startup import cli_overhead, compile_1000  # noqa: E402

import zjit  # noqa: E402
from zjit.asm import assemble  # noqa: E402

BIG_FUEL = 1 << 62
"""Fuel for metered runs: never runs out, so the count is exact."""


def _instance(engine: zjit.Engine, image: zjit.ModuleImage) -> zjit.Instance:
    return engine.load(image).instantiate(log=None)


def _timed_run(inst: zjit.Instance, n: int, reps: int) -> tuple[zjit.Result, float]:
    set_params(inst.memory, n, reps)
    t0 = time.perf_counter()
    result = inst.run()
    return result, time.perf_counter() - t0


def _best_run(inst: zjit.Instance, n: int, reps: int, trials: int) -> tuple[zjit.Result, float]:
    """Best time of ``trials`` runs (and the last result)."""
    best = math.inf
    result: zjit.Result | None = None
    for _ in range(trials):
        result, dt = _timed_run(inst, n, reps)
        best = min(best, dt)
    assert result is not None
    return result, best


def _checked(result: zjit.Result, expected: int, what: str, errors: list[str]) -> bool:
    if result.trap is not None:
        errors.append(f"{what}: trapped: {result.trap}")
        return False
    if result.reg("HL") != expected:
        errors.append(f"{what}: checksum {result.reg('HL')} != C {expected}")
        return False
    return True


def measure_interp(k: Kernel, image: zjit.ModuleImage, c_small: int, errors: list[str]) -> dict[str, Any]:
    """Interpreter at the reduced size: time (fuel off), instruction count (fuel on)."""
    n, reps = k.small
    inst = _instance(zjit.Engine(zjit.Policy(mem_size=MEM_SIZE), backend="interp"), image)
    _timed_run(inst, min(n, 64), 1)  # warm-up
    result, seconds = _best_run(inst, n, reps, 2)
    ok = _checked(result, c_small, f"{k.name}: interp", errors)
    metered = _instance(zjit.Engine(zjit.Policy(mem_size=MEM_SIZE, fuel=BIG_FUEL), backend="interp"), image)
    mresult, mseconds = _timed_run(metered, n, reps)
    count = BIG_FUEL - (mresult.fuel_left or 0)
    return {"n": n, "reps": reps, "seconds": seconds, "seconds_fuel": mseconds, "instructions": count,
            "ips": count / seconds, "checksum_ok": ok}


def prepare_jit(k: Kernel, image: zjit.ModuleImage, cache_dir: Path) -> tuple[dict[str, Any], Any, Any]:
    """JIT cold compile and cache-hit load times, plus warmed-up instances with fuel
    off and on."""
    n, _ = k.full
    cold = zjit.Engine(zjit.Policy(mem_size=MEM_SIZE, use_cache=False), backend="jit")
    t0 = time.perf_counter()
    cold.load(image)
    compile_s = time.perf_counter() - t0
    policy = zjit.Policy(mem_size=MEM_SIZE, cache_dir=cache_dir)
    zjit.Engine(policy, backend="jit").load(image)  # populate the disk cache
    hits = []
    for _ in range(3):
        engine = zjit.Engine(policy, backend="jit")
        t0 = time.perf_counter()
        engine.load(image)
        hits.append(time.perf_counter() - t0)
    inst = _instance(zjit.Engine(policy, backend="jit"), image)
    _timed_run(inst, min(n, 64), 1)  # warm-up (first touch of guest memory pages)
    fuel_inst = _instance(zjit.Engine(zjit.Policy(mem_size=MEM_SIZE, cache_dir=cache_dir, fuel=BIG_FUEL),
                                      backend="jit"), image)
    _timed_run(fuel_inst, min(n, 64), 1)
    return {"compile_s": compile_s, "cache_load_s": min(hits)}, inst, fuel_inst


def _warm_up_compiler() -> float:
    """Compile a trivial module once so per-kernel compile times exclude one-time
    set-up (LLVM initialisation, compile workers); returns that first compile's time."""
    image = assemble("main:\n    RET\n", "warm-up.s")
    t0 = time.perf_counter()
    zjit.Engine(zjit.Policy(use_cache=False), backend="jit").load(image)
    return time.perf_counter() - t0


def measure_kernel(k: Kernel, trials: int, build: Path, cache_dir: Path, jit: bool, quick: bool,
                   errors: list[str]) -> dict[str, Any]:
    """Every measurement of one kernel. C, JIT and metered JIT runs alternate, one
    of each per round, so a burst of load on the (shared) machine hits all three."""
    full = (max(1, k.full[0] // 10), k.full[1]) if quick and k.name != "fib_rec" else k.full
    k = Kernel(k.name, k.what, full, k.small)
    n, reps = k.full
    exe = compile_c(k, build)
    c_small, _ = run_c(exe, *k.small, 1)
    image = assemble(k.source(), k.asm_path.name)
    interp = measure_interp(k, image, c_small, errors)
    j: dict[str, Any] | None = None
    inst = fuel_inst = None
    if jit:
        j, inst, fuel_inst = prepare_jit(k, image, cache_dir)
    c_full: int | None = None
    c_times: list[float] = []
    jit_times: list[float] = []
    fuel_times: list[float] = []
    ok = True
    count = 0
    for _ in range(trials):
        checksum, seconds = run_c(exe, n, reps, 2)  # two calls per process: the second is warm
        if c_full is not None and checksum != c_full:
            errors.append(f"{k.name}: C checksum changed between runs")
        c_full = checksum
        c_times.append(seconds)
        if inst is not None and fuel_inst is not None:
            result, seconds = _timed_run(inst, n, reps)
            ok = _checked(result, c_full, f"{k.name}: jit", errors) and ok
            jit_times.append(seconds)
            result, seconds = _timed_run(fuel_inst, n, reps)
            ok = _checked(result, c_full, f"{k.name}: jit fuel on", errors) and ok
            fuel_times.append(seconds)
            count = BIG_FUEL - (result.fuel_left or 0)
    c_seconds = min(c_times)
    row: dict[str, Any] = {
        "name": k.name, "what": k.what, "full": list(k.full), "small": list(k.small),
        "c": {"checksum": c_full, "seconds": c_seconds, "all_s": c_times},
        "interp": interp,
        "jit": None,
    }
    if j is not None:
        j.update({"run_s": min(jit_times), "run_fuel_s": min(fuel_times), "all_run_s": jit_times,
                  "all_run_fuel_s": fuel_times, "instructions": count, "checksum_ok": ok})
        j["ips"] = count / j["run_s"]
        j["ratio"] = j["run_s"] / c_seconds
        j["ratio_fuel"] = j["run_fuel_s"] / c_seconds
        interp["est_full_s"] = count / interp["ips"]
        j["speedup_vs_interp"] = interp["est_full_s"] / j["run_s"]
        row["jit"] = j
    return row


def geomean(values: list[float]) -> float | None:
    """Geometric mean (None for no values)."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="zjit benchmarks against gcc -O2")
    ap.add_argument("--quick", action="store_true", help="a tenth of the full sizes, 2 trials (smoke test)")
    ap.add_argument("--kernels", default="", help="comma-separated subset of kernels")
    ap.add_argument("--trials", type=int, default=7, help="rounds of timed runs, the best counts (default 7)")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--no-startup", action="store_true", help="skip the compile and CLI start-up measurements")
    ap.add_argument("--json", default=str(HERE / "results.json"), help="where to write the JSON results")
    args = ap.parse_args(argv)
    trials = 2 if args.quick else args.trials
    wanted = {s.strip() for s in args.kernels.split(",") if s.strip()}
    unknown = wanted - {k.name for k in KERNELS}
    if unknown:
        ap.error(f"unknown kernels: {', '.join(sorted(unknown))}")
    kernels = [k for k in KERNELS if not wanted or k.name in wanted]
    jit = "jit" in zjit.available_backends()
    if not jit:
        print("note: the jit backend is not available; JIT columns are skipped", file=sys.stderr)
    errors: list[str] = []
    rows = []
    first_compile = _warm_up_compiler() if jit else None
    with tempfile.TemporaryDirectory(prefix="zjit-bench-") as tmp:
        for k in kernels:
            print(f"... {k.name}", file=sys.stderr, flush=True)
            rows.append(measure_kernel(k, trials, Path(tmp) / "build", Path(tmp) / "cache", jit,
                                       args.quick, errors))
    js = [r["jit"] for r in rows if r["jit"] is not None]
    summary: dict[str, Any] = {
        "geomean_jit_over_c": geomean([j["ratio"] for j in js]),
        "geomean_jit_over_c_fuel": geomean([j["ratio_fuel"] for j in js]),
        "geomean_jit_speedup_vs_interp": geomean([j["speedup_vs_interp"] for j in js]),
    }
    startup: dict[str, Any] = {}
    if not args.no_startup:
        print("... start-up", file=sys.stderr, flush=True)
        if jit:
            startup["compile_1000"] = compile_1000()
            startup["cli"] = cli_overhead()
    startup["first_compile_s"] = first_compile
    results = {"machine": machine_info(), "quick": args.quick, "trials": trials, "kernels": rows,
               "summary": summary, "startup": startup, "errors": errors}
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    table = render_table(results)
    print(table)
    if not args.no_docs and not args.quick and not wanted:
        update_docs(HERE.parent / "docs" / "benchmarks.md", table, results)
    for e in errors:
        print(f"CHECKSUM ERROR: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
