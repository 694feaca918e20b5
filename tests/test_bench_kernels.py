"""The benchmark kernels compute exactly what their C twins compute (so the JIT/C
ratios in docs/benchmarks.md compare equal work)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import zjit
from zjit.asm import assemble

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from kernels import KERNELS, MEM_SIZE, Kernel, compile_c, run_c, set_params  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

SIZES = {
    "fib_rec": [(0, 1), (1, 1), (2, 1), (10, 1), (17, 1)],
}
DEFAULT_SIZES = [(0, 1), (1, 1), (2, 1), (3, 2), (17, 3), (1000, 2)]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_kernel_matches_its_c_twin(kernel: Kernel, tmp_path: Path) -> None:
    exe = compile_c(kernel, tmp_path)
    inst = zjit.Engine(zjit.Policy(mem_size=MEM_SIZE), backend="interp").load(
        assemble(kernel.source(), kernel.asm_path.name)).instantiate(log=None)
    for n, reps in SIZES.get(kernel.name, DEFAULT_SIZES):
        expected, _ = run_c(exe, n, reps, 1)
        set_params(inst.memory, n, reps)
        result = inst.run()
        assert result.ok, (n, reps, result.trap)
        assert result.reg("HL") == expected, (kernel.name, n, reps)


def test_kernel_sizes_fit_guest_memory() -> None:
    arr = 0x10000
    need = {  # highest guest address each kernel touches at size N
        "sieve": lambda n: arr + n, "fnv1a": lambda n: arr + n, "strcase": lambda n: arr + n,
        "memcopy": lambda n: arr + 2 * n + 64, "fib_rec": lambda n: arr + 16 * n,
        "fib_iter": lambda n: 0x1010, "mulhash": lambda n: 0x1010,
    }
    assert set(need) == {k.name for k in KERNELS}
    for k in KERNELS:
        assert need[k.name](k.full[0]) <= MEM_SIZE, k.name
