"""Tiers (docs/tiering.md): baseline code, tier-up to O2 while guests run, on-stack
replacement, budgets, the disk cache of promoted code, concurrent loads.

Results are compared with the interpreter (the oracle); tests wait for
background compiles with :meth:`~zjit.backends.tiering.code.TieredCode.wait`
and never assert on timings.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from zjit.backends.tiering import code as tiered
from zjit.fuzz import hostile

import zjit
from zjit.asm import assemble
from zjit.errors import PolicyError
from zjit.image import ModuleImage

ENGINES = [b for b in ("jit", "arm64") if b in zjit.available_backends()]
pytestmark = pytest.mark.skipif(not ENGINES, reason="no compiling engine here")
WAIT = 300.0
"""Seconds a test waits for background compiles (generous: a busy machine)."""

CALLS = """
        PUBLIC main
        PUBLIC f
main:   LD HL, 200
        LD DE, 0
loop:   CALL f
        DEC HL
        CPI HL, 0
        JR ne, loop
        RET
f:      ADD64 DE, DE, HL
        XOR64 A, A, DE
        CP DE, A
        JR ltu, small
        INC BC
small:  RET
"""

FIB = """
        PUBLIC main
main:   LD HL, 23
        CALL fib
        RET
fib:    CPI HL, 2
        JR ltu, leaf
        DEC HL
        MOV IX, HL
        CALL fib
        MOV A, DE
        MOV HL, IX
        DEC HL
        CALL fib
        ADD64 DE, DE, A
        INC HL
        INC HL
        MOV IX, HL
        RET
leaf:   MOV DE, HL
        RET
"""
"""Recursion that keeps registers in the sense of the guest: DE = fib(HL) (A and
IX are clobbered by the recursion, which the oracle reproduces)."""

LONG_LOOP = """
        PUBLIC main
main:   LD HL, 0x600000
        LD DE, 1
        LD BC, 0
loop:   ADD64 BC, BC, DE
        XOR64 DE, DE, HL
        SLA64 A, DE, 3
        ADD64 BC, BC, A
        DEC HL
        CPI HL, 0
        JR ne, loop
        RET
"""
"""A loop long enough that its function is never called again while O2 code for
its header (on-stack replacement) gets ready."""


def _image(src: str) -> ModuleImage:
    return assemble(src, "t.s")


def _expected(image: ModuleImage, **call: Any) -> zjit.Result:
    inst = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(image).instantiate(log=None)
    return inst.call("main", **call) if call else inst.run()


def _tiered(module: zjit.Module) -> tiered.TieredCode:
    code = module.executable.default_code()  # type: ignore[attr-defined]
    assert isinstance(code, tiered.TieredCode)
    return code


def _same(a: zjit.Result, b: zjit.Result) -> None:
    assert (a.trap, a.registers, a.fuel_left, a.stdout) == (b.trap, b.registers, b.fuel_left, b.stdout)


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize("fields", [{"tier": "fast"}, {"tier": ""}, {"tier_threshold": 0},
                                    {"tier_threshold": -1}, {"tier_threshold": 1 << 31},
                                    {"tier_threshold": True}, {"tier_threshold": 1.5}])
def test_bad_tier_policy_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as err:
        zjit.Policy(**fields)
    assert err.value.code == "BAD_POLICY"


def test_tier_policy_defaults_and_ranges() -> None:
    assert (zjit.Policy().tier, zjit.Policy().tier_threshold) == ("auto", 1000)
    assert zjit.Policy(tier="baseline", tier_threshold=1).tier_threshold == 1
    assert zjit.Policy(tier_threshold=(1 << 31) - 1).tier_threshold == (1 << 31) - 1


# --------------------------------------------------------------------------- mixed tiers


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("promote", ["main", "f", "loop"])
def test_mixed_tier_call_chains(backend: str, promote: str) -> None:
    """Baseline main calling O2 f, O2 main calling baseline f, and a loop header
    promoted alone: the same Results as the interpreter, run after run."""
    image = _image(CALLS)
    module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1 << 30, use_cache=False),
                         backend=backend).load(image)
    code = _tiered(module)
    pc = {"main": image.exports["main"], "f": image.exports["f"]}.get(promote)
    if pc is None:  # the loop header: the first entry that is not a function
        pc = next(p for p in code.image.ids if p not in module.program.functions)
    expected = _expected(image)
    _same(module.instantiate(log=None).run(), expected)
    code.queue(code.image.ids[pc])
    assert code.wait(WAIT)
    assert code.tiers()[pc] == "optimized", code.refused
    assert [p for p, t in code.tiers().items() if t == "optimized"] == [pc]
    for _ in range(2):
        _same(module.instantiate(log=None).run(), expected)


@pytest.mark.parametrize("backend", ENGINES)
def test_a_hot_loop_header_brings_its_function(backend: str) -> None:
    """A loop header found hot is promoted with the function it is in (the next
    call runs the function's own O2 code); a hot function entry comes alone."""
    image = _image(CALLS)
    module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1 << 30, use_cache=False),
                         backend=backend).load(image)
    code = _tiered(module)
    functions = module.program.functions
    loop = next(p for p in code.image.ids if p not in functions)
    home = max(p for p in functions if p <= loop)
    fid = code.function_of(code.image.ids[loop])
    assert fid is not None and code.pcs[fid] == home
    assert code.function_of(code.image.ids[home]) is None
    code.request(code.image.ids[loop])
    assert code.wait(WAIT)
    assert {p for p, t in code.tiers().items() if t == "optimized"} == {loop, home}, code.refused
    for _ in range(2):
        _same(module.instantiate(log=None).run(), _expected(image))


@pytest.mark.parametrize("backend", ENGINES)
def test_everything_promoted_agrees(backend: str) -> None:
    image = _image(CALLS)
    module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1, use_cache=False), backend=backend).load(image)
    expected = _expected(image)
    _same(module.instantiate(log=None).run(), expected)
    code = _tiered(module)
    assert code.wait(WAIT)
    assert set(code.tiers().values()) == {"optimized"}, code.refused
    _same(module.instantiate(log=None).run(), expected)


def _run_window(module: zjit.Module) -> tuple[zjit.Result, float, float]:
    t0 = time.monotonic()
    result = module.instantiate(log=None).run()
    return result, t0, time.monotonic()


@pytest.mark.parametrize("backend", ENGINES)
def test_tier_up_while_a_recursion_runs(backend: str) -> None:
    """fib recurses long enough on baseline code that its O2 code arrives while
    it runs: the deeper calls then run O2 code, returning into baseline frames."""
    image = _image(FIB)
    expected = _expected(image)
    for _attempt in range(3):  # on a very busy machine the compile may finish after the run
        module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1, use_cache=False),
                             backend=backend).load(image)
        code = _tiered(module)
        result, start, end = _run_window(module)
        _same(result, expected)
        assert code.wait(WAIT)
        if any(start < t < end for t in code.installed_at.values()):
            break
    _same(module.instantiate(log=None).run(), expected)


@pytest.mark.parametrize("backend", ENGINES)
def test_on_stack_replacement_of_a_running_loop(backend: str) -> None:
    """main is never called again, but its loop continues in O2 code: the O2 code
    entered at the loop header takes over at the next counter expiry."""
    image = _image(LONG_LOOP)
    if backend == "arm64":
        image = _image(LONG_LOOP.replace("0x600000", "0x60000"))
    expected = _expected(image)
    for _attempt in range(3):
        module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1, use_cache=False),
                             backend=backend).load(image)
        code = _tiered(module)
        result, start, end = _run_window(module)
        _same(result, expected)
        assert code.wait(WAIT)
        header = next(p for p in code.image.ids if p not in module.program.functions)
        t = code.installed_at.get(code.image.ids[header])
        if t is not None and start < t < end:
            break
    assert code.tiers()[header] == "optimized"


# --------------------------------------------------------------------------- bounds and the cache


def test_function_over_budget_stays_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiered, "FN_INSTRUCTIONS", 3)
    image = _image(CALLS)
    module = zjit.Engine(zjit.Policy(tier="auto", tier_threshold=1, use_cache=False),
                         backend=ENGINES[0]).load(image)
    expected = _expected(image)
    _same(module.instantiate(log=None).run(), expected)
    code = _tiered(module)
    assert code.wait(WAIT)
    main = image.exports["main"]
    assert code.tiers()[main] == "refused" and "budget" in code.refused[code.image.ids[main]]
    assert code.table[code.nids + code.image.ids[main]] > tiered.NEVER // 2  # never asked again
    _same(module.instantiate(log=None).run(), expected)


def test_optimized_falls_back_function_by_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from zjit.backends import engine

    monkeypatch.setattr(engine, "MODULE_INSTRUCTIONS", 4)
    image = _image(CALLS)
    module = zjit.Engine(zjit.Policy(tier="optimized", use_cache=False), backend=ENGINES[0]).load(image)
    code = _tiered(module)
    assert code.fallback == "over the whole-module budget"
    assert {code.tiers()[pc] for pc in module.program.functions} == {"optimized"}
    _same(module.instantiate(log=None).run(), _expected(image))


def test_two_gib_of_memory_gets_o2_code() -> None:
    """Baseline code hard-wires memory limits as 32-bit immediates: from 2 GiB on,
    every tier compiles the whole module at O2 (and runs it the same)."""
    from zjit.backends.engine import BASELINE_MEM_LIMIT

    image = _image("PUBLIC main\nmain: LD HL, 0x7ffffff0\nST64 (HL), HL\nLD64 DE, (HL)\nRET\n")
    policy = zjit.Policy(mem_size=BASELINE_MEM_LIMIT, max_mem_size=BASELINE_MEM_LIMIT, tier="baseline",
                         use_cache=False)
    module = zjit.Engine(policy, backend=ENGINES[0]).load(image)
    assert not isinstance(module.executable.default_code(), tiered.TieredCode)  # type: ignore[attr-defined]
    assert module.instantiate(log=None).run().registers["DE"] == 0x7FFFFFF0


@pytest.mark.parametrize("backend", ENGINES)
def test_promoted_code_is_cached_for_later_processes(backend: str, tmp_path: Any) -> None:
    image = _image(CALLS)
    policy = zjit.Policy(tier="auto", tier_threshold=1, cache_dir=tmp_path)
    first = zjit.Engine(policy, backend=backend).load(image)
    first.instantiate(log=None).run()
    assert _tiered(first).wait(WAIT)
    promoted = {pc for pc, t in _tiered(first).tiers().items() if t == "optimized"}
    assert promoted
    later = zjit.Engine(policy, backend=backend).load(image)  # a new engine: nothing in memory
    code = _tiered(later)
    assert code is not _tiered(first)
    assert {pc for pc, t in code.tiers().items() if t == "optimized"} == promoted  # before any run
    _same(later.instantiate(log=None).run(), _expected(image))


# --------------------------------------------------------------------------- loads


def _straight(n: int) -> ModuleImage:
    return _image(hostile.straight(n))


def _exports(n: int) -> ModuleImage:
    return _image(hostile.exports(n))


def _nest(depth: int) -> ModuleImage:
    return _image(hostile.nest(depth))


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "make", "n"), [("straight", _straight, 40_000), ("exports", _exports, 10_000),
                                                  ("nest", _nest, 1_000)])
def test_hostile_shapes_load_and_run_under_auto(shape: str, make: Any, n: int) -> None:
    image = make(n)
    expected = _expected(image)
    for backend in ENGINES:
        module = zjit.Engine(zjit.Policy(use_cache=False), backend=backend).load(image)
        _same(module.instantiate(log=None).run(), expected)


def test_a_small_module_loads_while_a_large_one_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """One Engine, tier optimized: while the large module's O2 compile is under way
    (held here until the small load is done), the small module loads and runs,
    so the compile does not hold the engine."""
    from zjit.backends.engine import CompilingBackend

    large = _straight(2_000)
    compiling, release = threading.Event(), threading.Event()
    real = CompilingBackend.compile

    def compile_held(self: CompilingBackend, program: Any, opts: Any) -> Any:
        if program.image.code == large.code:
            compiling.set()
            release.wait(WAIT)
        return real(self, program, opts)

    monkeypatch.setattr(CompilingBackend, "compile", compile_held)
    engine = zjit.Engine(zjit.Policy(tier="optimized", use_cache=False), backend=ENGINES[0])
    errors: list[BaseException] = []

    def load_large() -> None:
        try:
            assert engine.load(large).instantiate(log=None).run().ok
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=load_large)
    t.start()
    assert compiling.wait(WAIT)
    small = _image("PUBLIC main\nmain: LD HL, 7\nADD64 HL, HL, HL\nRET\n")
    result = engine.load(small).instantiate(log=None).run()
    still_compiling = t.is_alive()
    release.set()
    t.join()
    assert errors == []
    assert result.registers["HL"] == 14
    assert still_compiling
