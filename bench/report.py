"""Benchmark report: machine facts, the markdown table, and docs/benchmarks.md refresh."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from kernels import gcc_version

BEGIN = "<!-- bench:results:begin (written by bench/run.py) -->"
END = "<!-- bench:results:end -->"
TARGETS = {"ratio": 1.5, "ratio_fuel": 2.0, "compile_1000_s": 0.100, "cli_overhead_s": 0.005}
"""Goals from the project brief (reported, never asserted)."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out


def machine_info() -> dict[str, Any]:
    """Where the numbers come from."""
    try:
        from importlib.metadata import version

        llvmlite = version("llvmlite")
    except Exception:  # pragma: no cover - metadata missing
        llvmlite = "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "llvmlite": llvmlite,
        "gcc": gcc_version(),
        "commit": _git_commit(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _mips(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f}"


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "meets target" if value <= target else "misses target"


def render_table(results: dict[str, Any]) -> str:
    """The markdown results section."""
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cpus']} CPUs, {m['machine']}), Python {m['python']}, "
        f"llvmlite {m['llvmlite']}, {m['gcc']}, commit {m['commit']}"
        + (f", load average {m['load_average'][0]:.2f}" if m.get("load_average") else "") + ".",
        "",
        "| kernel | size (N, REPS) | C ms | JIT ms | JIT/C | JIT fuel ms | fuel/C | compile ms | "
        "cache hit ms | JIT M instr/s | interp ms (size), fuel off / on | interp M instr/s | JIT vs interp |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["kernels"]:
        j = r["jit"] or {}
        i = r["interp"]
        lines.append(
            f"| {r['name']} | {r['full'][0]:,}, {r['full'][1]} | {_ms(r['c']['seconds'])} | "
            f"{_ms(j.get('run_s'))} | {_x(j.get('ratio'))} | {_ms(j.get('run_fuel_s'))} | "
            f"{_x(j.get('ratio_fuel'))} | {_ms(j.get('compile_s'))} | {_ms(j.get('cache_load_s'))} | "
            f"{_mips(j.get('ips'))} | {_ms(i['seconds'])} / {_ms(i['seconds_fuel'])} ({i['n']:,}, {i['reps']}) | "
            f"{_mips(i['ips'])} | {_x(j.get('speedup_vs_interp'))}x |"
        )
    s = results["summary"]
    lines += [
        "",
        f"* Geometric mean JIT/C, fuel off: **{_x(s['geomean_jit_over_c'])}** "
        f"(target <= {TARGETS['ratio']}: {_verdict(s['geomean_jit_over_c'], TARGETS['ratio'])}).",
        f"* Geometric mean JIT/C, fuel on: **{_x(s['geomean_jit_over_c_fuel'])}** "
        f"(target <= {TARGETS['ratio_fuel']}: "
        f"{_verdict(s['geomean_jit_over_c_fuel'], TARGETS['ratio_fuel'])}).",
        f"* Geometric mean JIT speed-up over the interpreter: {_x(s['geomean_jit_speedup_vs_interp'])}x.",
    ]
    st = results.get("startup") or {}
    c1000 = st.get("compile_1000")
    if c1000:
        lines.append(
            f"* Cold compile of a generated module of {min(c1000['instructions'])}-"
            f"{max(c1000['instructions'])} instructions at O2 (cache off): median **{_ms(c1000['median_s'])} ms**, "
            f"best {_ms(c1000['min_s'])} ms (target < 100 ms: "
            f"{'meets target' if c1000['median_s'] < TARGETS['compile_1000_s'] else 'misses target'}).")
    if st.get("first_compile_s") is not None:
        lines.append(f"* First JIT compile in a fresh process (a one-instruction module, including LLVM "
                     f"and compile-worker start-up): {_ms(st['first_compile_s'])} ms; the compile column "
                     f"above excludes that one-time cost.")
    cli = st.get("cli")
    if cli:
        lines.append(
            f"* Cache-hit `zjit run` of a small module: {_ms(cli['zjit_run_jit_s']['min'])} ms against "
            f"{_ms(cli['python_pass_s']['min'])} ms for `python -c pass` (best of both), so "
            f"**{_ms(cli['overhead_jit_s'])} ms** in zjit (median difference {_ms(cli['overhead_jit_median_s'])} ms; "
            f"target < 5 ms: "
            f"{'meets target' if cli['overhead_jit_s'] < TARGETS['cli_overhead_s'] else 'misses target'}); "
            f"with `--engine interp` {_ms(cli['overhead_interp_s'])} ms. "
            f"`import zjit.cli` takes {cli['import_zjit_cli_us']} us (`-X importtime`).")
        nopyc = cli.get("without_bytecode_cache")
        if nopyc:
            lines.append(
                f"* The same with `PYTHONDONTWRITEBYTECODE=1`, as the development environment runs (modules "
                f"without an existing `.pyc` are compiled from source at every start): "
                f"{_ms(nopyc['overhead_jit_s'])} ms beyond "
                f"`python -c pass` (interp: {_ms(nopyc['overhead_interp_s'])} ms).")
    if results.get("errors"):
        lines.append("")
        lines.extend(f"* CHECKSUM ERROR: {e}" for e in results["errors"])
    return "\n".join(lines)


def update_docs(path: Path, table: str, results: dict[str, Any]) -> None:
    """Replace the text between the result markers of ``path`` (append them if missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Latest results\n\n" + block + "\n"
    path.write_text(text)
