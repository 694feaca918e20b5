"""Start-up cost: how long a cache-hit ``zjit run`` takes beyond the Python
interpreter's own start-up (compile latency is in :mod:`compile_latency`)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SMALL_MODULE = """\
; a small module: sum 1..100 and print a line
        PUBLIC main
main:   LD BC, 100
        LD A, 0
loop:   ADD64 A, A, BC
        DEC BC
        CPI BC, 0
        JR ne, loop
        LD HL, msg
        LD DE, 6
        OUT
        MOV HL, A
        RET
        ORG 0x1000
msg:    DB "hello", 10
"""


def _zjit_command() -> list[str]:
    """The ``zjit`` console script of this interpreter (not a version-manager shim,
    whose own start-up would be counted), else ``python -m zjit``."""
    beside = Path(sys.executable).with_name("zjit")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    script = shutil.which("zjit")
    return [script] if script else [sys.executable, "-m", "zjit"]


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def _overhead(zjit_cmd: list[str], mod: Path, env: dict[str, str], samples: int) -> dict[str, Any]:
    """Interleaved wall times of ``python -c pass`` and cache-hit ``zjit run`` (jit and interp)."""
    subprocess.run([*zjit_cmd, "run", str(mod)], env=env, capture_output=True)  # warm caches
    subprocess.run([*zjit_cmd, "run", "--engine", "interp", str(mod)], env=env, capture_output=True)
    base: list[float] = []
    jit: list[float] = []
    interp: list[float] = []
    for _ in range(samples):
        base.append(_wall([sys.executable, "-c", "pass"], env))
        jit.append(_wall([*zjit_cmd, "run", str(mod)], env))
        interp.append(_wall([*zjit_cmd, "run", "--engine", "interp", str(mod)], env))
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-c", "import zjit.cli"],
                                env=env, capture_output=True, text=True).stderr
    return {
        "python_pass_s": {"min": min(base), "median": statistics.median(base)},
        "zjit_run_jit_s": {"min": min(jit), "median": statistics.median(jit)},
        "zjit_run_interp_s": {"min": min(interp), "median": statistics.median(interp)},
        "overhead_jit_s": min(jit) - min(base),
        "overhead_jit_median_s": statistics.median(jit) - statistics.median(base),
        "overhead_interp_s": min(interp) - min(base),
        "import_zjit_cli_us": _import_total(importtime, "zjit.cli"),
    }


def cli_overhead(samples: int = 15) -> dict[str, Any]:
    """Cache-hit ``zjit run`` of a small module beyond Python start-up, measured with
    Python's bytecode cache (a normal installation; a private ``PYTHONPYCACHEPREFIX``)
    and with ``PYTHONDONTWRITEBYTECODE=1`` as this project's development
    environment runs (modules without an existing ``.pyc`` are then compiled from
    source on every start)."""
    zjit_cmd = _zjit_command()
    with tempfile.TemporaryDirectory(prefix="zjit-bench-") as tmp:
        src = Path(tmp) / "small.s"
        src.write_text(SMALL_MODULE)
        mod = Path(tmp) / "small.zasm.bin"
        base_env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        base_env["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        pyc_env = {**base_env, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        nopyc_env = {**base_env, "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run([*zjit_cmd, "asm", str(src), "-o", str(mod)], check=True, env=pyc_env,
                       capture_output=True)
        check = subprocess.run([*zjit_cmd, "run", str(mod)], env=pyc_env, capture_output=True)
        if check.stdout != b"hello\n":
            raise RuntimeError(f"zjit run of the small module failed: {check.stderr.decode()}")
        with_pyc = _overhead(zjit_cmd, mod, pyc_env, samples)
        without_pyc = _overhead(zjit_cmd, mod, nopyc_env, max(3, samples // 3))
    return {**with_pyc, "without_bytecode_cache": without_pyc,
            "command": " ".join([*zjit_cmd, "run", "small.zasm.bin"])}


def _import_total(report: str, module: str) -> int | None:
    """Cumulative microseconds of ``module`` in a ``-X importtime`` report."""
    for line in report.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None
