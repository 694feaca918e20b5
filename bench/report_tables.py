"""Markdown sections of the bench report, one function per section of results.json."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "zjit/c": 1.5, "zjit_fuel/c": 2.0,  # the project brief
    "zjit/wasmtime": 1.0, "zjit/c_issue10": 1.15, "zjit_fuel/zjit": 1.15,  # issue 10
    "compile_1000_s": 0.100, "cli_overhead_s": 0.005,  # the project brief
    "baseline_ms_per_1k": 5.0, "baseline/wasmtime": 2.0,  # issue 9
    "interrupt_s": 0.001,  # issue 10
}
"""Goals (reported, never asserted)."""


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds with one decimal ("n/a" for None)."""
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def x(value: float | None) -> str:
    """A ratio with two decimals ("n/a" for None)."""
    return "n/a" if value is None else f"{value:.2f}"


def verdict(value: float | None, target: float) -> str:
    """Whether ``value`` is at most ``target``."""
    if value is None:
        return "not measured"
    return "meets target" if value <= target else "misses target"


def _mips(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f}"


RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("c", "C"), ("zjit O2", "zjit O2"), ("zjit O2 fuel", "zjit O2 fuel"),
    ("zjit tier=baseline", "zjit baseline"), ("zjit tier=auto", "zjit auto"),
    ("wasmtime default", "Wasmtime default"), ("wasmtime fuel", "Wasmtime fuel"),
    ("wasmtime same_safety", "Wasmtime same safety"),
)
RATIO_COLUMNS: tuple[tuple[str, str], ...] = (
    ("zjit/c", "zjit/C"), ("zjit/wasmtime", "zjit/WT"), ("zjit/wasmtime_same_safety", "zjit/WT same"),
    ("zjit_fuel/zjit", "zjit fuel on/off"), ("wasmtime_fuel/wasmtime", "WT fuel on/off"),
    ("zjit_fuel/wasmtime_fuel", "zjit fuel/WT fuel"), ("wasmtime/c", "WT/C"),
    ("zjit_baseline/zjit", "baseline/O2"), ("zjit_auto/zjit", "auto/O2"),
)


def kernel_runs(results: dict[str, Any]) -> list[str]:
    """Run times (best of N, ms) and ratios per kernel, then geometric means."""
    rows = results["kernels"]
    runs = [c for c in RUN_COLUMNS if any(c[0] in r["runs"] for r in rows)]
    ratios = [c for c in RATIO_COLUMNS if any(r["ratios"].get(c[0]) is not None for r in rows)]
    lines = [
        "| kernel | size (N, REPS) | " + " | ".join(f"{h} ms" for _, h in runs) + " | "
        + " | ".join(h for _, h in ratios) + " |",
        "|---|---|" + "---:|" * (len(runs) + len(ratios)),
    ]
    for r in rows:
        cells = [ms(r["runs"][k]["seconds"]) if k in r["runs"] else "n/a" for k, _ in runs]
        cells += [x(r["ratios"].get(k)) for k, _ in ratios]
        lines.append(f"| {r['name']} | {r['full'][0]:,}, {r['full'][1]} | " + " | ".join(cells) + " |")
    s = results["summary"]
    lines.append("| **geometric mean** | | " + " | ".join("" for _ in runs) + " | "
                 + " | ".join(f"**{x(s.get(k))}**" for k, _ in ratios) + " |")
    lines.append("")
    gm = s.get("zjit/c")
    lines.append(f"* zjit O2 / C, geometric mean: **{x(gm)}** (brief: <= {TARGETS['zjit/c']}, "
                 f"{verdict(gm, TARGETS['zjit/c'])}; issue 10: <= {TARGETS['zjit/c_issue10']}, "
                 f"{verdict(gm, TARGETS['zjit/c_issue10'])}).")
    fuel_c = _fuel_over_c(rows)
    lines.append(f"* zjit O2 fuel on / C, geometric mean: **{x(fuel_c)}** (brief: <= {TARGETS['zjit_fuel/c']}, "
                 f"{verdict(fuel_c, TARGETS['zjit_fuel/c'])}).")
    fo = s.get("zjit_fuel/zjit")
    lines.append(f"* zjit fuel on / fuel off, geometric mean: **{x(fo)}** (issue 10: <= "
                 f"{TARGETS['zjit_fuel/zjit']}, {verdict(fo, TARGETS['zjit_fuel/zjit'])}).")
    wt = s.get("zjit/wasmtime")
    if wt is not None:
        worst = max((r["ratios"]["zjit/wasmtime"], r["name"]) for r in rows if r["ratios"].get("zjit/wasmtime"))
        lines.append(f"* zjit O2 / Wasmtime default, geometric mean: **{x(wt)}**; worst kernel "
                     f"{worst[1]} at {x(worst[0])} (issue 10: every kernel <= {TARGETS['zjit/wasmtime']}, "
                     f"{verdict(worst[0], TARGETS['zjit/wasmtime'])}). Against Wasmtime with the same "
                     f"safety: **{x(s.get('zjit/wasmtime_same_safety'))}**.")
    return lines


def _fuel_over_c(rows: list[dict[str, Any]]) -> float | None:
    from kernel_bench import geomean

    values = [r["runs"]["zjit O2 fuel"]["seconds"] / r["runs"]["c"]["seconds"]
              for r in rows if "zjit O2 fuel" in r["runs"]]
    return geomean(values)


def zjit_details(results: dict[str, Any]) -> list[str]:
    """Per kernel: cold compile, cache hit, guest instruction rate, interpreter."""
    lines = [
        "| kernel | compile ms | cache hit ms | zjit M instr/s | interp ms (size), fuel off / on | "
        "interp M instr/s | zjit vs interp |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["kernels"]:
        j = r.get("jit") or {}
        i = r.get("interp")
        interp = (f"{ms(i['seconds'])} / {ms(i['seconds_fuel'])} ({i['n']:,}, {i['reps']})" if i else "n/a")
        speedup = j.get("speedup_vs_interp")
        lines.append(f"| {r['name']} | {ms(j.get('compile_s'))} | {ms(j.get('cache_load_s'))} | "
                     f"{_mips(j.get('ips'))} | {interp} | {_mips(i['ips'] if i else None)} | "
                     f"{x(speedup)}{'x' if speedup else ''} |")
    gm = results["summary"].get("zjit_speedup_vs_interp")
    lines += ["", f"* Geometric mean zjit speed-up over the interpreter: {x(gm)}x."]
    return lines


def tier_up(results: dict[str, Any]) -> list[str]:
    """Per kernel under ``tier="auto"``: time from a cold load to O2 speed."""
    rows = [r for r in results["kernels"] if r.get("tier_up")]
    if not rows:
        return []
    lines = [
        "| kernel | load ms (baseline) | first run ms | O2 run ms | runs to O2 speed | ms from load to O2 speed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r["tier_up"]
        reached = t["reached_s"]
        lines.append(f"| {r['name']} | {ms(t['load_s'])} | {ms(t['runs'][0])} | {ms(r['runs']['zjit O2']['seconds'])} | "
                     f"{len(t['runs']) if reached is not None else 'not reached'} | "
                     f"{ms(reached) if reached is not None else 'n/a'} |")
    return lines


def load_shapes(rows: list[dict[str, Any]]) -> list[str]:
    """Baseline loads of large and hostile programs (CPU ms per 1k instructions)."""
    if not rows:
        return []
    lines = ["| program | instructions | baseline CPU ms | per 1k | auto CPU ms | per 1k |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        b, a, n = r["loads"]["baseline"], r["loads"]["auto"], r["instructions"]
        lines.append(f"| {r['shape']} ({r['n']:,}) | {n:,} | {ms(b['cpu_s'])} | {b['cpu_s'] * 1e6 / n:.1f} | "
                     f"{ms(a['cpu_s'])} | {a['cpu_s'] * 1e6 / n:.1f} |")
    worst = max(max(r["loads"][t]["cpu_s"] * 1e6 / r["instructions"] for t in ("baseline", "auto")) for r in rows)
    lines += ["", f"* Worst: {worst:.1f} ms CPU per 1k instructions (issue 9: <= 5.0, "
              f"{'meets' if worst <= 5.0 else 'misses'} target)."]
    return lines


def compile_latency(c: dict[str, Any]) -> list[str]:
    """Time to runnable code per size and configuration."""
    lines = [
        "| program | configuration | CPU ms | wall ms | CPU ms per 1k instr | CPU / Wasmtime | wall / Wasmtime |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for group in c["summary"].values():
        for name, row in group["rows"].items():
            label = f"{int(group['instructions']):,} instr" + (f" (x{row['samples']})" if row["samples"] > 1 else "")
            lines.append(f"| {label} | {name} | {ms(row['cpu_s'])} | {ms(row['wall_s'])} | "
                         f"{row['cpu_ms_per_1k']:.1f} | {x(row.get('cpu_ratio'))} | {x(row.get('wall_ratio'))} |")
    lines.append("")
    if c["skipped"]:
        lines.append(f"* Skipped (per-item cap: O2 only up to the {c['o2_cap']:,}-instruction programs "
                     f"without `--full`): "
                     + "; ".join(c["skipped"]) + ".")
    if c.get("baseline_warm_up_s") is not None:
        lines.append(f"* One-time set-up left out of the tier rows: the process's first baseline load (stencil "
                     f"library read from its cache) of a 1,000-instruction program and the decoding of every "
                     f"stencil took {ms(c['baseline_warm_up_s'])} ms wall.")
    twins = c.get("twins")
    if twins and twins["functions"]:
        lines.append(f"* WebAssembly twins: {twins['functions']:,} functions, {twins['dispatched']:,} of them "
                     f"irreducible (translated with the block dispatcher, the rest structured).")
    first = next(iter(c["summary"].values()), None)
    o2 = first["rows"].get("zjit O2") if first else None
    if o2 is not None and first is not None and first["instructions"] <= 1500:
        lines.append(f"* About 1,000 instructions at O2: median {ms(o2['wall_s'])} ms wall (brief: < 100 ms, "
                     f"{verdict(o2['wall_s'], TARGETS['compile_1000_s'])}).")
    for group in c["summary"].values():
        base = group["rows"].get("zjit tier=baseline")
        if base is not None:
            lines.append(f"* Baseline tier at {int(group['instructions']):,} instructions: "
                         f"{base['cpu_ms_per_1k']:.1f} ms CPU per 1k (issue 9: <= {TARGETS['baseline_ms_per_1k']}, "
                         f"{verdict(base['cpu_ms_per_1k'], TARGETS['baseline_ms_per_1k'])}), "
                         f"{x(base.get('cpu_ratio'))}x Wasmtime (issue 9: <= {TARGETS['baseline/wasmtime']}).")
    return lines


def interrupt_latency(i: dict[str, Any]) -> list[str]:
    """Interrupt-to-TIMEOUT latency per configuration and loop shape."""
    lines = ["| configuration | loop shape | median ms | max ms |", "|---|---|---:|---:|"]
    worst = 0.0
    for config, shapes in i["configs"].items():
        for shape, st in shapes.items():
            worst = max(worst, st["max_s"])
            lines.append(f"| {config} | {shape} | {st['median_s'] * 1e3:.3f} | {st['max_s'] * 1e3:.3f} |")
    f = i["floor"]
    lines.append(f"| (floor: thread hand-over alone) | | {f['median_s'] * 1e3:.3f} | {f['max_s'] * 1e3:.3f} |")
    lines += ["", f"* {i['repeats']} interrupts per shape; worst {worst * 1e3:.3f} ms (issue 10: <= 1 ms on every "
              f"shape, {verdict(worst, TARGETS['interrupt_s'])})."]
    return lines


def startup(st: dict[str, Any]) -> list[str]:
    """First compile in a process and cache-hit ``zjit run`` start-up."""
    lines: list[str] = []
    if st.get("first_compile_s") is not None:
        lines.append(f"* First JIT compile in a fresh process (a one-instruction module, including LLVM "
                     f"and compile-worker start-up): {ms(st['first_compile_s'])} ms; the compile figures "
                     f"exclude that one-time cost.")
    cli = st.get("cli")
    if cli:
        lines.append(
            f"* Cache-hit `zjit run` of a small module: {ms(cli['zjit_run_jit_s']['min'])} ms against "
            f"{ms(cli['python_pass_s']['min'])} ms for `python -c pass` (best of both), so "
            f"**{ms(cli['overhead_jit_s'])} ms** in zjit (median difference {ms(cli['overhead_jit_median_s'])} ms; "
            f"target < 5 ms: {verdict(cli['overhead_jit_s'], TARGETS['cli_overhead_s'])}); "
            f"with `--engine interp` {ms(cli['overhead_interp_s'])} ms. "
            f"`import zjit.cli` takes {cli['import_zjit_cli_us']} us (`-X importtime`).")
        nopyc = cli.get("without_bytecode_cache")
        if nopyc:
            lines.append(
                f"* The same with `PYTHONDONTWRITEBYTECODE=1`, as the development environment runs (modules "
                f"without an existing `.pyc` are compiled from source at every start): "
                f"{ms(nopyc['overhead_jit_s'])} ms beyond "
                f"`python -c pass` (interp: {ms(nopyc['overhead_interp_s'])} ms).")
    return lines
