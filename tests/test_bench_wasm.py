"""The WebAssembly side of the bench computes what zjit computes: the WAT kernel
twins give their C twins' checksums in every Wasmtime configuration, and the
ZASM -> WebAssembly translator's twins of generated programs end with the same
registers, trap (kind and pc), output, log and memory as zjit's interpreter.
Control flow: loops, nested loops, early exits, loops entered at their header
from the middle of the code, jumps and fall-throughs into other functions'
entries are structured (no block dispatcher); irreducible flow falls back to the
dispatcher; hypothesis draws arbitrary control-flow graphs of both kinds."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("wasmtime", reason="the bench extra (wasmtime) is not installed")

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from gen_modules import bench_program  # noqa: E402
from kernels import KERNELS, Kernel, compile_c, run_c  # noqa: E402
from wasm_kernels import WASM_CONFIGS, WasmKernel, make_engine, wat_to_wasm  # noqa: E402
from wasm_twin import WasmTwin, translate  # noqa: E402
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


def _twin(image: zjit.ModuleImage, policy: zjit.Policy | None = None) -> WasmTwin:
    return translate(zjit.Engine(policy or zjit.Policy(), backend="interp").load(image))


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
    assert twin.dispatched == 0 and "br_table" not in twin.wat and "loop $L" in twin.wat
    import wasmtime

    wasmtime.Module.validate(ENGINES["same_safety"], wat_to_wasm(twin.wat))


# -- control flow -------------------------------------------------------------------
NESTED = """
        PUBLIC main
main:   LD BC, 5
        LD A, 0x2000
outer:  LD DE, 4
middle: LD IX, 3
inner:  ADD64 HL, HL, IX
        ST64 (A), HL
        CPI HL, {limit}
        JR gtu, done            ; early exit from three loops
        DEC IX
        CPI IX, 1
        JR eq, next             ; leaves the inner loop only
        CPI IX, 0
        JR ne, inner
next:   DEC DE
        CPI DE, 0
        JR ne, middle
        DEC BC
        CPI BC, 0
        JR ne, outer
done:   LD IX, 2
spin:   DEC IX                  ; a one-block loop
        CPI IX, 0
        JR ne, spin
        RET
"""
ROTATED = """
        PUBLIC main
        PUBLIC early
main:   LD A, 0
        CPI HL, 5
        JR lt, small
        LD BC, 10
        JR test                 ; into the loop at its test (the header) ...
small:  LD BC, 3
        JR test                 ; ... from two places: a header that is also a merge
body:   ADD64 A, A, BC
        CPI A, 40
        JR gtu, early           ; from inside the loop into another function's entry
        DEC BC
test:   CPI BC, 0
        JR ne, body
        LD DE, 0
again:  INC DE                  ; a loop with two back edges
        CPI DE, 3
        JR ltu, again
        ADD64 HL, HL, DE
        CPI DE, 9
        JR ltu, again
        RET
early:  LD IX, 0x2000
        ST64 (IX+8), A
        LD64 HL, (IX+8)
        RET
"""
CALLS = """
        PUBLIC main
        PUBLIC side
main:   LD BC, 4
loop:   CALL twice
        DEC BC
        CPI BC, 0
        JR ne, loop
        CPI HL, 100
        JR gtu, tail
        CALL fin
        LD BC, 3
        CALL count
        RET
tail:   JR fin                  ; a tail jump: fin's RET ends the run
twice:  ADD64 HL, HL, HL
        CPI HL, 50
        JR ltu, back
        JR fin                  ; from a callee: fin's RET returns to main's loop
back:   RET
side:   INC A
        INC A                   ; falls through into fin's entry
fin:    INC DE
        LD IX, 0x2000
        ST64 (IX), DE
        RET
count:  DEC BC                  ; a loop back to its own function's entry
        INC A
        CPI BC, 0
        JR gt, count
        RET
"""
JOINS = """
        PUBLIC main
main:   CPI HL, 0               ; both arms meet at y1, the second arm also at y2:
        JR eq, other            ; two merge nodes under one dominator (nested blocks)
        INC A
        JR y1
other:  INC DE
        CPI DE, 3
        JR eq, y2
y1:     INC BC
y2:     RET
"""
IRREDUCIBLE = """
        PUBLIC main
main:   LD BC, 6
        CPI HL, 0
        JR ne, second           ; a second way into the loop first..second
first:  ADD64 A, A, BC
        DEC BC
second: INC DE
        CPI BC, 0
        JR ne, first
        RET
"""


@pytest.mark.parametrize("limit", [60, 1000], ids=["early-exit", "all-trips"])
def test_twin_of_nested_loops_is_structured_and_agrees(limit: int) -> None:
    image = assemble(NESTED.format(limit=limit), "nested.s")
    twin = _twin(image)
    assert twin.dispatched == 0 and "br_table" not in twin.wat
    assert twin.wat.count("loop $L") == 4
    assert _compare(image, zjit.Policy(), export="main") is None


@pytest.mark.parametrize("hl", [0, 9])
def test_twin_of_loops_entered_at_their_test_is_structured_and_agrees(hl: int) -> None:
    image = assemble(ROTATED, "rotated.s")
    twin = _twin(image)
    assert twin.dispatched == 0 and "br_table" not in twin.wat
    assert twin.wat.count("loop $L") == 2
    assert _compare(image, zjit.Policy(), export="main", hl=hl) is None


@pytest.mark.parametrize(("export", "hl"), [("main", 1), ("main", 7), ("main", 30), ("side", 0)])
def test_twin_of_jumps_into_other_functions_agrees(export: str, hl: int) -> None:
    image = assemble(CALLS, "calls.s")
    twin = _twin(image)
    assert twin.dispatched == 0 and twin.functions == 5  # main, side, twice, fin, count
    assert "return_call $f" in twin.wat
    assert _compare(image, zjit.Policy(), export=export, hl=hl) is None


@pytest.mark.parametrize(("hl", "de"), [(0, 0), (0, 2), (1, 0)])
def test_twin_of_branches_meeting_at_two_places_agrees(hl: int, de: int) -> None:
    image = assemble(JOINS, "joins.s")
    twin = _twin(image)
    assert twin.dispatched == 0 and twin.wat.count("block $B") == 2
    assert _compare(image, zjit.Policy(), export="main", hl=hl, de=de) is None


@pytest.mark.parametrize("hl", [0, 1])
def test_twin_of_an_irreducible_loop_falls_back_to_the_dispatcher(hl: int) -> None:
    image = assemble(IRREDUCIBLE, "irreducible.s")
    twin = _twin(image)
    assert twin.dispatched == 1 and "br_table" in twin.wat
    assert _compare(image, zjit.Policy(), export="main", hl=hl) is None


def test_the_loop_nest_traps_at_the_same_pc() -> None:
    """A store in the innermost loop hits a read-only range on some iteration."""
    src = NESTED.format(limit=1000).replace("LD A, 0x2000", "LD A, ro - 48").replace(
        "ST64 (A), HL", "ST64 (A), HL\n        ADD64 A, A, IX")
    src += "        ORG 0x3000\n        SEGMENT rodata, r\nro:     DB 1, 2, 3\n        ENDS\n"
    image = assemble(src, "nested-trap.s")
    assert _twin(image).readonly, "the test needs a read-only range"
    assert _compare(image, zjit.Policy(), export="main") == "WRITE_PROTECT"


_STMTS = ("ADD64 HL, HL, DE", "XOR64 DE, DE, HL", "MUL64 A, HL, DE", "SRL64 HL, HL, 3", "INC DE",
          "ROL64 DE, DE, 7", "ADD A, A, HL", "SUB64 HL, HL, A", "LD BC, 0xFF8\n    AND64 BC, BC, HL\n"
          "    ST64 (BC+0x100), A")
_RARE = ("DIVU BC, HL, DE", "LD64 A, (HL)")  # DIV0 when DE's low half is 0; OOB when HL is large


@st.composite
def cfg_programs(draw: st.DrawFn) -> tuple[str, int]:
    """Functions of random basic blocks with random jumps (inside the function,
    forwards and backwards, and to other functions' entries), conditional
    branches, calls and returns. ``IX`` counts down in every block a cycle can
    return to (function entries, targets of backward jumps) and the block returns
    once it reaches 0, so every run ends. Some graphs are irreducible (a loop with
    two entries is planted in some functions, others happen by chance)."""
    nfuncs = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 8)) for _ in range(nfuncs)]
    # Functions after the first may put their exit block first, so that the
    # preceding function's last block falls through into the next entry.
    exit_first = [i > 0 and i + 1 < nfuncs and draw(st.booleans()) for i in range(nfuncs)]
    lines = ["    PUBLIC main", "main:", f"    LD IX, {draw(st.integers(1, 60))}"]
    entries = [f"f{i}_0" for i in range(nfuncs)]
    for i, size in enumerate(sizes):
        split_loop = size >= 3 and draw(st.booleans())
        blocks: list[tuple[list[str], str, int | str]] = []
        for j in range(size):
            stmts = [draw(st.sampled_from(_RARE if draw(st.integers(0, 15)) == 0 else _STMTS))
                     for _ in range(draw(st.integers(0, 2)))]
            target: int | str = draw(st.one_of(st.integers(0, size - 1), st.integers(0, size - 1),
                                               st.sampled_from(entries)))
            kind = draw(st.sampled_from(("fall", "jump", "cond", "cond", "cond", "call", "ret")))
            if split_loop and j in (0, size - 1):  # a loop f_1..f_last entered at f_1 and at f_2
                kind, target = "cond", 2 if j == 0 else 1
            blocks.append((stmts, kind, target))
        guarded = {0} | {t for j, (_, k, t) in enumerate(blocks) if k in ("jump", "cond") and t in range(j + 1)}
        if exit_first[i]:
            lines += [f"f{i}_x:", "    RET"]
        for j, (stmts, kind, target) in enumerate(blocks):
            lines.append(f"f{i}_{j}:")
            if j in guarded:
                lines += ["    DEC IX", "    CPI IX, 0", f"    JR le, f{i}_x"]
            lines += [f"    {text}" for text in stmts]
            label = target if isinstance(target, str) else f"f{i}_{target}"
            if kind == "jump":
                lines.append(f"    JR {label}")
            elif kind == "cond":
                cond = draw(st.sampled_from(("eq", "ne", "lt", "gtu", "geu")))
                lines += [draw(st.sampled_from(("    CP HL, DE", "    CPI A, 3", "    CPI DE, 100"))),
                          f"    JR {cond}, {label}"]
            elif kind == "call":
                lines.append(f"    CALL {draw(st.sampled_from(entries))}")
            elif kind == "ret":
                lines.append("    RET")
        if not exit_first[i]:
            lines += [f"f{i}_x:", "    RET"]
    return "\n".join(lines) + "\n", draw(st.sampled_from((8, 1024)))


@settings(max_examples=120, deadline=None)
@given(cfg_programs(), st.integers(0, (1 << 64) - 1), st.integers(0, 300))
def test_twin_of_arbitrary_control_flow_agrees(program: tuple[str, int], hl: int, de: int) -> None:
    src, depth = program
    _compare(assemble(src, "cfg.s"), zjit.Policy(max_call_depth=depth), export="main", hl=hl, de=de)


def test_arbitrary_control_flow_covers_both_translations() -> None:
    """The strategy above makes structured and dispatched functions alike."""
    counts = {"structured": 0, "dispatched": 0}

    @settings(max_examples=60, deadline=None, database=None)
    @given(cfg_programs())
    def collect(program: tuple[str, int]) -> None:
        twin = _twin(assemble(program[0], "cfg.s"))
        counts["dispatched"] += twin.dispatched
        counts["structured"] += twin.functions - twin.dispatched

    collect()
    assert counts["structured"] > 0 and counts["dispatched"] > 0, counts
