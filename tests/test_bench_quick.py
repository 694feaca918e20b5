"""The pieces of ``bench/run.py --quick`` compute correct things (correctness only,
no timing assertions): every side of every kernel returns C's checksum, the
compile-latency bench loads and compiles its generated programs (whose twin
agrees with zjit), interrupts end every loop shape with TIMEOUT, the process-tree
CPU clock sees a child's work, the bench runs without wasmtime, and a run leaves
docs/benchmarks.md alone unless asked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import compile_latency  # noqa: E402
import interrupt_latency  # noqa: E402
import run as bench_run  # noqa: E402
from cpu_clock import tree_cpu  # noqa: E402
from gen_modules import bench_program  # noqa: E402
from kernel_bench import measure_kernel  # noqa: E402
from kernels import KERNELS, Kernel  # noqa: E402

import zjit  # noqa: E402
from zjit.asm import assemble  # noqa: E402

JIT = "jit" in zjit.available_backends()
needs_jit = pytest.mark.skipif(not JIT, reason="needs the jit backend")
TINY = {"fib_rec": (12, 1)}


@needs_jit
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_every_side_of_a_kernel_returns_the_c_checksum(kernel: Kernel, tmp_path: Path) -> None:
    errors: list[str] = []
    row = measure_kernel(kernel, 1, tmp_path / "build", tmp_path / "cache", True, bench_run.wasm_engines(),
                         errors, size=TINY.get(kernel.name, (1000, 2)), interp=False)
    assert errors == []
    assert {"c", "zjit O2", "zjit O2 fuel"} <= set(row["runs"])
    assert all(r["checksum_ok"] for r in row["runs"].values())
    assert row["jit"]["instructions"] > 0
    assert row["ratios"]["zjit/c"] > 0


def test_bench_programs_are_deterministic_terminating_and_of_the_asked_size() -> None:
    a, b = bench_program("t", 1500), bench_program("t", 1500)
    assert a == b
    assert a != bench_program("u", 1500)
    module = zjit.Engine(zjit.Policy(mem_size=a.mem_size, fuel=10_000_000), backend="interp").load(
        assemble(a.asm, "gen.s"))
    assert len(module.program.instrs) == a.instructions >= 1500
    result = module.instantiate(log=None).run()
    assert result.ok, result.trap


@needs_jit
def test_compile_latency_piece_loads_and_compiles() -> None:
    errors: list[str] = []
    out = compile_latency.measure((400,), {400: 1}, False, True, bench_run.wasm_engines(), errors)
    assert errors == []
    (item,) = out["items"]
    assert {"O0", "O2"} <= set(item["zjit"])
    if bench_run.wasm_engines():
        assert set(item["wasmtime"]) == {"default", "same_safety"}
        assert item["twin_checked"] is True
        assert out["twins"] == {"functions": item["twin_functions"], "dispatched": 0}  # all structured
        assert item["twin_functions"] > 1
        assert out["summary"]["400"]["rows"]["wasmtime default"]["cpu_ratio"] == 1.0


def test_the_o2_cap_skips_large_programs_unless_full() -> None:
    o2 = next(c for c in compile_latency.compile_configs() if c.name == "O2")
    assert compile_latency._capped(o2, compile_latency.O2_CAP + 1, full=False)
    assert not compile_latency._capped(o2, compile_latency.O2_CAP + 1, full=True)
    assert not compile_latency._capped(o2, compile_latency.O2_CAP, full=False)


@needs_jit
def test_interrupts_end_every_loop_shape_with_timeout() -> None:
    errors: list[str] = []
    out = interrupt_latency.measure(repeats=1, settle=0.005, errors=errors)
    assert errors == []
    assert set(out["configs"]["O2"]) == set(interrupt_latency.SHAPES)


def test_tree_cpu_counts_a_child_process() -> None:
    # The child spins until it is killed, so a loaded machine cannot make it end
    # before the parent has looked.
    busy = "while True: pass\n"
    before = tree_cpu()
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        seen = 0.0
        deadline = time.monotonic() + 60
        while seen < 0.1 and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = tree_cpu() - before
    finally:
        child.kill()
        child.wait()
    assert seen >= 0.1  # the running child's CPU time is counted


@needs_jit
def test_run_without_wasmtime_and_docs_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    docs = bench_run.DOCS.read_bytes()
    monkeypatch.setitem(sys.modules, "wasmtime", None)  # import wasmtime now raises ImportError
    out = tmp_path / "results.json"
    assert bench_run.main(["--quick", "--only", "kernels", "--kernels", "fib_rec", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["errors"] == []
    tiers = {"zjit tier=baseline", "zjit tier=auto"}  # the tiers of issue 9, measured next to O2
    assert set(results["kernels"][0]["runs"]) == {"c", "zjit O2", "zjit O2 fuel"} | tiers
    assert "Wasmtime columns: not measured" in capsys.readouterr().out
    assert bench_run.DOCS.read_bytes() == docs


def test_update_docs_needs_a_full_run() -> None:
    with pytest.raises(SystemExit):
        bench_run.main(["--quick", "--update-docs"])


def test_tier_rows_appear_only_when_policy_has_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import zjit_configs

    assert [c.name for c in zjit_configs.compile_configs()][:2] == ["O0", "O2"]
    if not zjit_configs.has_tiers():
        assert zjit_configs.tier_configs() == []

        @dataclasses.dataclass(frozen=True)
        class TieredPolicy(zjit.Policy):
            tier: str = "auto"

        monkeypatch.setattr(zjit, "Policy", TieredPolicy)
    assert zjit_configs.has_tiers()
    assert [c.name for c in zjit_configs.compile_configs()] == ["O0", "O2", "tier=baseline", "tier=auto"]
    o2 = zjit_configs.opt_config(2).policy(use_cache=False)
    assert (o2.opt_level, o2.tier) == (2, "optimized")  # type: ignore[attr-defined]
    assert compile_latency._capped(zjit_configs.opt_config(2), compile_latency.O2_CAP + 1, full=False)
    assert not compile_latency._capped(zjit_configs.tier_configs()[1], compile_latency.O2_CAP + 1, full=False)
