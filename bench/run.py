"""zjit benchmarks (``make bench``): zjit next to C (gcc -O2) and Wasmtime, in one run.

Sections (all by default, a subset with ``--only``):

* ``kernels``: seven ZASM kernels with C and WebAssembly twins; run times of C,
  zjit O2 fuel off / on (and the baseline and auto tiers when this zjit has
  them), Wasmtime default / fuel / same safety, interleaved in rounds (best of
  N); ratios and geometric means; zjit's cold compile, cache-hit load and the
  interpreter per kernel (:mod:`kernel_bench`);
* ``compile``: time to runnable code of generated modules of about 1k, 10k and
  100k instructions, zjit ``Engine.load`` against Wasmtime compiling the
  WebAssembly twin of the same program (:mod:`compile_latency`);
* ``interrupt``: ``interrupt()`` to TIMEOUT latency on four loop shapes
  (:mod:`interrupt_latency`);
* ``startup``: first compile in a process and cache-hit ``zjit run`` start-up.

Prints the results, writes ``bench/results.json`` (untracked) and leaves tracked
files alone; ``--update-docs`` also rewrites the results section of
``docs/benchmarks.md``. Without the ``wasmtime`` package the Wasmtime columns are
left out (and the output says so).

    python bench/run.py [--quick] [--full] [--only kernels,compile,interrupt,startup]
                        [--kernels a,b] [--trials N] [--json PATH] [--update-docs]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compile_latency  # noqa: E402
import interrupt_latency  # noqa: E402
import load_shapes  # noqa: E402
import wasm_kernels  # noqa: E402
from kernel_bench import measure_kernel, summarise, warm_up_compiler  # noqa: E402
from kernels import KERNELS, Kernel  # noqa: E402
from report import machine_info, render_table, update_docs  # noqa: E402
from startup import cli_overhead  # noqa: E402
from zjit_configs import has_tiers  # noqa: E402

import zjit  # noqa: E402

SECTIONS = ("kernels", "compile", "interrupt", "startup")
DOCS = HERE.parent / "docs" / "benchmarks.md"


def quick_size(k: Kernel) -> tuple[int, int]:
    """The ``--quick`` size of a kernel: a tenth of N (fib_rec, whose N is a
    recursion depth, stays)."""
    return k.full if k.name == "fib_rec" else (max(1, k.full[0] // 10), k.full[1])


def wasm_engines() -> dict[str, Any]:
    """One Wasmtime engine per configuration, or none when wasmtime is missing."""
    if not wasm_kernels.available():
        return {}
    return {c: wasm_kernels.make_engine(c) for c in wasm_kernels.WASM_CONFIGS}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="zjit benchmarks against gcc -O2 and Wasmtime")
    ap.add_argument("--quick", action="store_true",
                    help="everything small (a tenth of the kernel sizes, 2 rounds, 1k-instruction compile "
                         "bench, 3 interrupts per shape): a smoke test, well under a minute")
    ap.add_argument("--full", action="store_true",
                    help="also compile the programs above 10k instructions at O2 (minutes)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run (of {', '.join(SECTIONS)})")
    ap.add_argument("--kernels", default="", help="comma-separated subset of kernels")
    ap.add_argument("--trials", type=int, default=7, help="rounds of timed kernel runs, the best counts")
    ap.add_argument("--json", default=str(HERE / "results.json"), help="where to write the JSON results")
    ap.add_argument("--update-docs", action="store_true",
                    help="rewrite the results section of docs/benchmarks.md (full runs only)")
    args = ap.parse_args(argv)
    args.sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.sections - set(SECTIONS):
        ap.error(f"unknown sections: {', '.join(sorted(args.sections - set(SECTIONS)))}")
    wanted = {s.strip() for s in args.kernels.split(",") if s.strip()}
    if wanted - {k.name for k in KERNELS}:
        ap.error(f"unknown kernels: {', '.join(sorted(wanted - {k.name for k in KERNELS}))}")
    args.kernel_list = [k for k in KERNELS if not wanted or k.name in wanted]
    if args.update_docs and (args.quick or wanted or args.sections != set(SECTIONS)):
        ap.error("--update-docs needs a full run (no --quick, --kernels or --only)")
    return args


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    trials = 2 if args.quick else args.trials
    jit = "jit" in zjit.available_backends()
    if not jit:
        _note("note: the jit backend is not available; zjit JIT figures are skipped")
    engines = wasm_engines()
    if not engines:
        _note("note: wasmtime is not installed (pip install -e '.[bench]'); Wasmtime columns are skipped")
    errors: list[str] = []
    results: dict[str, Any] = {"machine": machine_info(), "quick": args.quick, "full": args.full,
                               "trials": trials, "sections": sorted(args.sections),
                               "wasmtime_configs": wasm_kernels.WASM_CONFIGS if engines else {},
                               "kernels": [], "summary": {}, "startup": {}, "errors": errors}
    results["startup"]["first_compile_s"] = warm_up_compiler() if jit else None
    if "kernels" in args.sections:
        with tempfile.TemporaryDirectory(prefix="zjit-bench-") as tmp:
            for k in args.kernel_list:
                _note(f"... kernel {k.name}")
                results["kernels"].append(measure_kernel(
                    k, trials, Path(tmp) / "build", Path(tmp) / "cache", jit, engines, errors,
                    size=quick_size(k) if args.quick else None))
        results["summary"] = summarise(results["kernels"])
    if "compile" in args.sections:
        _note("... time to runnable code")
        sizes = (1_000,) if args.quick else compile_latency.SIZES
        samples = {1_000: 1} if args.quick else compile_latency.SAMPLES
        results["compile"] = compile_latency.measure(sizes, samples, args.full, jit, engines, errors)
        if jit and has_tiers():
            _note("... baseline loads of large and hostile programs")
            results["compile"]["shapes"] = load_shapes.measure(args.quick)
    if "interrupt" in args.sections and jit:
        _note("... interrupt latency")
        results["interrupt"] = interrupt_latency.measure(3 if args.quick else 20, 0.005 if args.quick else 0.02,
                                                         errors)
    if "startup" in args.sections and jit:
        _note("... start-up")
        results["startup"]["cli"] = cli_overhead(5 if args.quick else 15)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    table = render_table(results)
    print(table)
    if args.update_docs:
        update_docs(DOCS, table, results)
        _note(f"updated {DOCS}")
    for e in errors:
        _note(f"ERROR: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
