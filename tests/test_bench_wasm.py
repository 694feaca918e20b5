"""The WebAssembly side of the bench computes what zjit computes: the WAT kernel
twins give their C twins' checksums in every Wasmtime configuration, and the
ZASM -> WebAssembly translator's twins of generated programs end with the same
registers, trap (kind and pc), output, log and memory as zjit's interpreter."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("wasmtime", reason="the bench extra (wasmtime) is not installed")

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from gen_modules import bench_program  # noqa: E402
from kernels import KERNELS, Kernel, compile_c, run_c  # noqa: E402
from wasm_kernels import WASM_CONFIGS, WasmKernel, make_engine, wat_to_wasm  # noqa: E402
from wasm_twin import translate  # noqa: E402
from wasm_twin_host import TwinInstance  # noqa: E402
from zjit.fuzz.choosers import RandomChooser  # noqa: E402
from zjit.fuzz.generators import TRAP_KINDS, random_program, trap_program  # noqa: E402
from zjit.fuzz.program import GenProgram  # noqa: E402

import zjit  # noqa: E402
from zjit.asm import assemble  # noqa: E402

ENGINES = {c: make_engine(c) for c in WASM_CONFIGS}
SIZES = {"fib_rec": [(0, 1), (1, 1), (2, 1), (10, 1), (17, 1)]}
DEFAULT_SIZES = [(0, 1), (1, 1), (2, 1), (3, 2), (17, 3), (1000, 2)]
TWIN_FUEL = 50_000_000
"""Bounds a twin that loops where the guest does not (a translator bug): it fails
instead of hanging."""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_wat_kernel_matches_its_c_twin(kernel: Kernel, tmp_path: Path) -> None:
    exe = compile_c(kernel, tmp_path)
    runners = {c: WasmKernel(kernel, ENGINES[c], c) for c in WASM_CONFIGS}
    for n, reps in SIZES.get(kernel.name, DEFAULT_SIZES):
        expected, _ = run_c(exe, n, reps, 1)
        for config, wk in runners.items():
            got, _ = wk.run(n, reps)
            assert got == expected, (kernel.name, config, n, reps)
    assert runners["fuel"].fuel_used, "the fuel configuration meters"


def _compare(image: zjit.ModuleImage, policy: zjit.Policy, stdin: bytes = b"", ctl=None,
             export: str | None = None, **regs: int) -> str | None:
    """Run the module on the interpreter and its twin on Wasmtime; assert they agree.
    Returns the trap kind name (or None)."""
    module = zjit.Engine(policy, backend="interp").load(image)
    inst = module.instantiate(stdin=stdin, log=None, ctl=ctl)
    expected = inst.run() if export is None else inst.call(export, **regs)
    twin = TwinInstance(translate(module), engine=ENGINES["fuel"], stdin=stdin, ctl=ctl, fuel=TWIN_FUEL)
    got = twin.call(export, **regs)
    trap = expected.trap
    assert (got.trap, got.pc) == ((trap.kind, trap.pc) if trap else (None, None))
    assert got.registers == expected.registers
    assert got.stdout == expected.stdout
    assert got.log == tuple(expected.log)
    assert twin.memory_bytes() == bytes(inst.memory)
    return trap.kind.name if trap else None


def _run_generated(gp: GenProgram) -> str | None:
    # The twin models no fuel: run unmetered on both sides.
    return _compare(gp.image(), gp.policy(fuel=None), gp.stdin, gp.ctl_handler())


@pytest.mark.parametrize("seed", range(24))
def test_twin_of_random_program_agrees_with_the_interpreter(seed: int) -> None:
    _run_generated(random_program(seed))


@pytest.mark.parametrize("kind", [k for k in TRAP_KINDS if k.name != "FUEL"], ids=lambda k: k.name)
def test_twin_traps_like_the_interpreter(kind: zjit.TrapKind) -> None:
    for seed in range(3):
        assert _run_generated(trap_program(RandomChooser(f"twin:{kind.name}:{seed}"), kind)) == kind.name


def test_twin_of_an_export_with_preset_registers() -> None:
    src = """
        PUBLIC main
        PUBLIC twice
main:   LD HL, 1
twice:  ADD64 HL, HL, HL
        CPI HL, 100
        JR ltu, twice
        CALL bump
        RET
bump:   INC DE
        RET
"""
    image = assemble(src, "export.s")
    assert _compare(image, zjit.Policy(), export="twice", hl=3, de=7) is None
    assert _compare(image, zjit.Policy()) is None


def test_twin_of_a_bench_program_agrees_and_compiles_at_every_size_shape() -> None:
    prog = bench_program("twin-test", 600)
    assert _compare(assemble(prog.asm, "bench.s"), zjit.Policy(mem_size=prog.mem_size)) is None
    bigger = bench_program("twin-test", 3000)
    module = zjit.Engine(zjit.Policy(mem_size=bigger.mem_size), backend="interp").load(
        assemble(bigger.asm, "bench3000.s"))
    twin = translate(module)
    assert twin.functions > 5
    import wasmtime

    wasmtime.Module.validate(ENGINES["same_safety"], wat_to_wasm(twin.wat))
