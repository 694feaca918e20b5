"""Function layout for compile speed: loops split off long functions, cold functions
compiled ``optnone``; and the graph helpers behind it."""

from __future__ import annotations

import pytest
from zjit.backends.llvm import CodegenOptions, lower
from zjit.backends.middle.graphs import on_cycles, sccs
from zjit.backends.middle.lift import lift
from zjit.backends.middle.plan import SPLIT_MIN_COST, hot_called, split_entries, verifier_shape
from zjit.backends.native.engine import JitBackend
from zjit.verifier import VerifiedProgram, verify

import zjit
from zjit.asm import assemble
from zjit.isa import TrapKind

STRAIGHT = "\n".join("    ADD64 DE, DE, BC\n    XOR64 IX, IX, DE" for _ in range(SPLIT_MIN_COST // 2))

# A long main: straight-line code, a loop calling `helper`, more straight-line
# code, a second loop. `helper` is called from a loop: hot. `once` is called from
# straight-line code only and has no loop: cold.
LONG = f"""
    PUBLIC main
main:
    LD BC, 3
    LD HL, 20
    CALL once
{STRAIGHT}
loop1:
    CALL helper
    DEC HL
    CPI HL, 0
    JR ne, loop1
{STRAIGHT}
    LD HL, 5
loop2:
    ADD64 A, A, HL
    DEC HL
    CPI HL, 0
    JR ne, loop2
    RET
helper:
    INC A
    RET
once:
    LD DE, 7
    RET
"""


def prog(src: str) -> VerifiedProgram:
    return verify(assemble(src))


def test_loops_of_long_functions_become_functions() -> None:
    p = prog(LONG)
    extra = split_entries(p)
    m = lift(p)
    assert set(m.functions) == set(p.functions) | extra
    main = m.functions[p.entry]
    assert not any(b.loop_header for b in main.blocks.values())
    assert main.cold and main.tail_callees()
    loops = [fn for fn in m.functions.values() if any(b.loop_header for b in fn.blocks.values())]
    assert len(loops) == 2 and not any(fn.cold for fn in loops)
    assert all(fn.blocks[fn.entry].loop_header for fn in loops)  # each starts at its loop header
    # every guest instruction is still lifted exactly once
    assert sum(b.cost for fn in m.functions.values() for b in fn.blocks.values()) == len(p.instrs)


def test_hot_and_cold_functions() -> None:
    p = prog(LONG)
    m = lift(p)
    helper, once = sorted(pc for pc in p.functions if pc != p.entry)[-2:]
    assert not m.functions[helper].cold  # called from a loop
    assert m.functions[once].cold
    entries = set(m.functions)
    shapes = {e: verifier_shape(p, e, entries) for e in entries}
    assert helper in hot_called(shapes) and once not in hot_called(shapes)
    text = lower(m, CodegenOptions()).text
    assert "optnone" in text
    cold_defs = [ln for ln in text.splitlines() if ln.startswith("define") and ln.endswith("#5 {")]
    assert len(cold_defs) == sum(fn.cold for fn in m.functions.values())


def test_short_functions_and_hot_callees_are_not_split() -> None:
    short = prog("PUBLIC main\nmain:\n LD HL, 3\ntop:\n DEC HL\n CPI HL, 0\n JR ne, top\n RET\n")
    assert split_entries(short) == set()
    called_in_loop = prog(LONG.replace("    CALL helper\n", "    CALL main2\n") + "main2:\n" + STRAIGHT
                          + "\nl3:\n DEC BC\n CPI BC, 0\n JR ne, l3\n RET\n")
    m = lift(called_in_loop)
    main2 = max(called_in_loop.functions)
    assert not any(b.is_tail for b in m.functions[main2].blocks.values())


@pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")
@pytest.mark.parametrize("policy", [{}, {"opt_level": 0}, {"fuel": 150}, {"fuel": 10**6}])
def test_split_code_matches_the_interpreter(policy: dict[str, int]) -> None:
    image = assemble(LONG)
    results = []
    for backend in ("interp", "jit"):
        r = zjit.Engine(zjit.Policy(use_cache=False, **policy), backend=backend).load(image).instantiate().run()  # type: ignore[arg-type]
        results.append((r.registers, None if r.trap is None else (r.trap.kind, r.trap.pc), r.fuel_left))
    assert results[0] == results[1]
    if policy.get("fuel") == 150:
        assert results[1][1] is not None and results[1][1][0] is TrapKind.FUEL


def test_sccs_and_cycles() -> None:
    g = {1: [2], 2: [3, 1], 3: [4], 4: [4], 5: [1, 9]}
    comp = sccs(g)
    assert comp[1] == comp[2] != comp[3]
    assert len({comp[3], comp[4], comp[5]}) == 3
    assert comp[3] > comp[4] and comp[5] > comp[1]  # edges lead to lower numbers
    assert on_cycles(g) == {1, 2, 4}
    deep = {i: [i + 1] for i in range(5000)} | {5000: [0]}
    assert len(set(sccs(deep).values())) == 1  # iterative: no recursion limit
