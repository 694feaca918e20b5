"""Benchmark report: machine facts, the markdown results (sections in
:mod:`report_tables`), and the refresh of docs/benchmarks.md (only when asked)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import report_tables as tables
from kernel_bench import TIER_UP_SLACK
from kernels import gcc_version
from wasm_kernels import version as wasmtime_version

BEGIN = "<!-- bench:results:begin (written by bench/run.py) -->"
END = "<!-- bench:results:end -->"


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
        "wasmtime": wasmtime_version(),
        "commit": _git_commit(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def render_table(results: dict[str, Any]) -> str:
    """The markdown results section: every part results.json holds."""
    m = results["machine"]
    wt = m.get("wasmtime") if results.get("wasmtime_configs") else None
    lines = [
        f"Measured {m['date']} on {m['cpu']} ({m['cpus']} CPUs, {m['machine']}), Python {m['python']}, "
        f"llvmlite {m['llvmlite']}, {m['gcc']}, "
        + (f"wasmtime {wt}" if wt else "wasmtime not installed") + f", commit {m['commit']}"
        + (f", load average {m['load_average'][0]:.2f}" if m.get("load_average") else "") + "."
        + (" Quick run (reduced sizes, two rounds): not for comparison." if results.get("quick") else ""),
        "",
    ]
    if not wt:
        lines += ["Wasmtime columns: not measured (`wasmtime` is not installed; "
                  "`pip install -e '.[bench]'` adds it).", ""]
    if results.get("kernels"):
        lines += ["### Kernels: run time (best of {})".format(results["trials"]), "",
                  *tables.kernel_runs(results), "",
                  "### Kernels: zjit compile, cache and interpreter", "", *tables.zjit_details(results), ""]
        up = tables.tier_up(results)
        if up:
            lines += ["### Kernels under tier=auto: from a cold load to O2 speed", "",
                      "A new Engine, cache off, the kernel run back to back from the start of `Engine.load`; "
                      f"a run counts as at O2 speed within {TIER_UP_SLACK:.2f}x of the best O2 run above.", "",
                      *up, ""]
    if results.get("compile"):
        lines += ["### Time to runnable code (cache off)", "", *tables.compile_latency(results["compile"]), ""]
        shapes = tables.load_shapes(results["compile"].get("shapes") or [])
        if shapes:
            lines += ["### Baseline loads of large and hostile programs (cache off)", "", *shapes, ""]
    if results.get("interrupt"):
        lines += ["### Interrupt latency (jit engine)", "", *tables.interrupt_latency(results["interrupt"]), ""]
    start = tables.startup(results.get("startup") or {})
    if start:
        lines += ["### Start-up", "", *start, ""]
    if results.get("errors"):
        lines.extend(f"* ERROR: {e}" for e in results["errors"])
    return "\n".join(lines).rstrip("\n")


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
