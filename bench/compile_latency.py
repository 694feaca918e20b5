"""Time to runnable code: zjit ``Engine.load`` (cache off) against Wasmtime's
``Module(engine, wasm)`` for the same generated programs.

For each size (about 1k, 10k and 100k guest instructions) and sample seed,
:func:`gen_modules.bench_program` makes a program; it is assembled and verified
once (the instruction count comes from the verified program), translated to its
WebAssembly twin (:mod:`wasm_twin`) and the WAT parsed to binary, all outside the
timed regions. Then, back to back, each zjit configuration (O0, O2 and, when this
zjit has them, the tiers) loads the image with a new Engine and the cache off,
and each Wasmtime configuration compiles the binary. Both CPU time (of this
process and its children: zjit compiles in a worker process, Wasmtime in threads;
see :mod:`cpu_clock`) and wall time are recorded. ``twins`` counts the twins'
functions and those translated with the block dispatcher (irreducible control flow).

Per-item cap: configurations that compile everything at O2 (``O2``,
``tier=optimized``) are skipped for the sizes above ``O2_CAP`` (the 100k
programs) unless ``full`` is set (100k instructions at O2 take minutes today);
skipped items are listed.

One-time set-up stays out of the items, on both sides: Wasmtime compiles an
empty module first, zjit's O2 rows follow the bench's first compile (LLVM and
the compile workers started), and a first baseline load of another program reads
the stencil library, then every stencil is decoded (``baseline_warm_up_s``, reported).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from cpu_clock import tree_cpu
from gen_modules import bench_program
from zjit_configs import ZjitConfig, compile_configs

import zjit
from zjit.asm import assemble

SIZES: tuple[int, ...] = (1_000, 10_000, 100_000)
SAMPLES: dict[int, int] = {1_000: 5, 10_000: 2, 100_000: 1}
O2_CAP = 10_000
"""Largest nominal program size compiled at O2 without ``--full``."""
WASM_COMPILE_CONFIGS: tuple[str, ...] = ("default", "same_safety")


def _timed(fn: Callable[..., object], *args: object) -> dict[str, float]:
    """CPU (process tree), CPU (this process only) and wall seconds of ``fn(*args)``."""
    c0, p0, w0 = tree_cpu(), time.process_time(), time.perf_counter()
    fn(*args)
    w1, p1, c1 = time.perf_counter(), time.process_time(), tree_cpu()
    return {"cpu_s": c1 - c0, "process_s": p1 - p0, "wall_s": w1 - w0}


def _capped(config: ZjitConfig, size: int, full: bool) -> bool:
    """True when ``config`` compiles everything at O2 and the program's nominal
    ``size`` is above the cap (and ``full`` is not set)."""
    at_o2 = dict(config.overrides).get("opt_level") == 2 or dict(config.overrides).get("tier") == "optimized"
    return at_o2 and size > O2_CAP and not full


def _check_twin(module: zjit.Module, twin: Any, engine: Any, errors: list[str], label: str) -> bool:
    """Run the program on zjit's jit engine and its twin on Wasmtime; compare."""
    from wasm_twin_host import TwinInstance

    jit = zjit.Engine(zjit.Policy(mem_size=twin.mem_size, use_cache=False), backend="jit").load(module.image)
    expected = jit.instantiate(log=None).run()
    got = TwinInstance(twin, engine=engine).call()
    same = (expected.trap is None and got.trap is None and expected.registers == got.registers
            and expected.stdout == got.stdout)
    if not same:
        errors.append(f"{label}: the WebAssembly twin disagrees with zjit ({expected.trap}, {got.trap})")
    return same


def measure(sizes: tuple[int, ...] = SIZES, samples: dict[int, int] | None = None, full: bool = False,
            jit: bool = True, wasm_engines: dict[str, Any] | None = None,
            errors: list[str] | None = None) -> dict[str, Any]:
    """Every item, then medians per size and configuration (see the module docstring)."""
    from wasm_kernels import wat_to_wasm

    samples = samples or SAMPLES
    errors = errors if errors is not None else []
    engines = {c: e for c, e in (wasm_engines or {}).items() if c in WASM_COMPILE_CONFIGS}
    configs = compile_configs() if jit else []
    if engines:
        import wasmtime

        for engine in engines.values():  # one-time set-up out of the figures, as for zjit
            wasmtime.Module(engine, wat_to_wasm("(module (func))"))
    warm_up_s = _warm_up_baseline() if jit and any(dict(c.overrides).get("tier") for c in configs) else None
    items: list[dict[str, Any]] = []
    skipped: list[str] = []
    for size in sizes:
        for seed in range(samples.get(size, 1)):
            prog = bench_program(f"latency:{seed}", size)
            image = assemble(prog.asm, f"latency-{size}-{seed}.s")
            module = zjit.Engine(zjit.Policy(mem_size=prog.mem_size), backend="interp").load(image)
            count = len(module.program.instrs)
            item: dict[str, Any] = {"size": size, "seed": seed, "instructions": count, "zjit": {}, "wasmtime": {}}
            for config in configs:
                if _capped(config, size, full):
                    skipped.append(f"{config.name} at {count:,} instructions")
                    continue
                engine = zjit.Engine(config.policy(mem_size=prog.mem_size, use_cache=False), backend="jit")
                item["zjit"][config.name] = _timed(engine.load, image)
            if engines:
                from wasm_twin import translate

                twin = translate(module)
                wasm = wat_to_wasm(twin.wat)
                item["wasm_bytes"] = len(wasm)
                item["twin_functions"], item["twin_dispatched"] = twin.functions, twin.dispatched
                for name, engine in engines.items():
                    item["wasmtime"][name] = _timed(wasmtime.Module, engine, wasm)
                if jit and size == min(sizes) and seed == 0:
                    item["twin_checked"] = _check_twin(module, twin, engines["default"], errors,
                                                       f"compile bench {size}")
            items.append(item)
    twins = {"functions": sum(i.get("twin_functions", 0) for i in items),
             "dispatched": sum(i.get("twin_dispatched", 0) for i in items)}
    return {"items": items, "summary": _summary(items), "skipped": skipped, "o2_cap": O2_CAP,
            "full": full, "twins": twins, "baseline_warm_up_s": warm_up_s}


def _warm_up_baseline() -> float:
    """Load a program of another seed at ``tier="baseline"`` once and decode every
    stencil of the library, so the figures exclude the one-time set-up of a
    process (the stencil library read from its cache; its stencils are decoded
    on first use, about 4 us each), as they exclude LLVM's start for the O2
    rows; returns the wall seconds of that set-up."""
    from zjit.backends.baseline.library import library
    from zjit.backends.targets import HOST_TRIPLE

    prog = bench_program("latency:warm-up", 1_000)
    image = assemble(prog.asm, "latency-warm-up.s")
    engine = zjit.Engine(zjit.Policy(tier="baseline", mem_size=prog.mem_size, use_cache=False), backend="jit")
    t0 = time.perf_counter()
    engine.load(image)
    lib = library(HOST_TRIPLE)
    for name in lib.names():
        lib.get(name)
    return time.perf_counter() - t0


def _summary(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Per size: median instructions and, per configuration, median CPU and wall
    seconds, ms per 1,000 instructions, and ratios to Wasmtime's default."""
    out: dict[str, Any] = {}
    for size in sorted({i["size"] for i in items}):
        group = [i for i in items if i["size"] == size]
        count = statistics.median(i["instructions"] for i in group)
        rows: dict[str, Any] = {}
        for side in ("zjit", "wasmtime"):
            for name in dict.fromkeys(n for i in group for n in i[side]):
                got = [i[side][name] for i in group if name in i[side]]
                per_1k = [g["cpu_s"] * 1e6 / i["instructions"] for g, i in
                          zip(got, (i for i in group if name in i[side]), strict=True)]
                rows[f"{side} {name}"] = {
                    "cpu_s": statistics.median(g["cpu_s"] for g in got),
                    "wall_s": statistics.median(g["wall_s"] for g in got),
                    "cpu_ms_per_1k": statistics.median(per_1k),
                    "samples": len(got),
                }
        base = rows.get("wasmtime default")
        if base:
            for row in rows.values():
                row["cpu_ratio"] = row["cpu_s"] / base["cpu_s"]
                row["wall_ratio"] = row["wall_s"] / base["wall_s"]
        out[str(size)] = {"instructions": count, "rows": rows}
    return out
