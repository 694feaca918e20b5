"""Tail calls: control reaching another function's entry by a jump, a fall-through
or a CALL's return point continues in that function instead of lifting it again."""

from __future__ import annotations

import pytest
from zjit.backends.middle.effects import call_depth_bound
from zjit.backends.middle.ir import Call, TailCall
from zjit.backends.middle.lift import lift
from zjit.backends.native.engine import JitBackend
from zjit.verifier import verify

import zjit
from zjit.asm import assemble
from zjit.isa import TrapKind

jit_only = pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")

# Exported labels in the middle of main (one inside a loop), a CALL whose return
# point is an exported label, a conditional jump into another function, CMP read
# after a tail call, and more modified registers than come back in registers.
CHAIN = """
    PUBLIC main
    PUBLIC mid1
    PUBLIC mid2
main:
    LD HL, 5
    LD DE, 1
    LD BC, 0
mid1:
    ADD64 DE, DE, DE
    INC BC
    DEC HL
    CPI HL, 0
    JR gt, mid1
    LD IX, 7
    LD A, 3
    CALL helper
mid2:
    ADD64 A, A, IX
    CPI A, 100
    JR ltu, small
    RET
small:
    CPI BC, 5
    JR eq, helper
    RET
helper:
    MUL64 IX, IX, DE
    INC A
    INC BC
    CP A, BC
    RET
"""

# f and g jump to each other forever (f is called and g exported: functions).
SPIN = """
    PUBLIC main
    PUBLIC g
main:
    CALL f
    RET
f:
    INC HL
    JR g
g:
    INC DE
    JR f
"""

# A million round trips between two functions (g is exported, so a function of
# its own): a tail call must not use stack.
PINGPONG = """
    PUBLIC main
    PUBLIC g
main:
    LD BC, 1000000
    CALL f
    RET
f:
    DEC BC
    CPI BC, 0
    JR eq, done
    JR g
done:
    RET
g:
    INC HL
    JR f
"""


def engine(backend: str, **policy: object) -> zjit.Engine:
    policy.setdefault("use_cache", False)
    return zjit.Engine(zjit.Policy(**policy), backend=backend)  # type: ignore[arg-type]


Outcome = tuple[dict[str, int], tuple[TrapKind, int] | None, int | None]


def outcome(backend: str, src: str, entry: str | None = None, **policy: object) -> Outcome:
    inst = engine(backend, **policy).load(assemble(src)).instantiate(log=None)
    r = inst.call(entry) if entry else inst.run()
    trap = None if r.trap is None else (r.trap.kind, r.trap.pc)
    return r.registers, trap, r.fuel_left


def test_exported_labels_are_not_lifted_twice() -> None:
    p = verify(assemble(CHAIN))
    m = lift(p)
    main = m.functions[p.entry]
    mid1, mid2 = p.exports["mid1"], p.exports["mid2"]
    tails = [b for b in main.blocks.values() if b.is_tail]
    assert [b.pc for b in tails] == [mid1] and isinstance(tails[0].term, TailCall)
    assert not tails[0].insts and tails[0].cost == 0
    assert main.tail_callees() == {mid1}
    # mid1 holds the loop (its entry is the loop header) and continues in mid2
    # after the CALL returns.
    f1 = m.functions[mid1]
    assert f1.blocks[mid1].loop_header and f1.tail_callees() == {mid2}
    assert any(isinstance(b.term, Call) for b in f1.blocks.values())
    # Every guest instruction is lifted into exactly one function.
    lifted = sum(b.cost for fn in m.functions.values() for b in fn.blocks.values())
    assert lifted == len(p.instrs)


def test_tail_callees_changes_count_as_the_callers() -> None:
    p = verify(assemble(CHAIN))
    m = lift(p)
    main, mid1, mid2 = (m.functions[pc] for pc in (p.entry, p.exports["mid1"], p.exports["mid2"]))
    helper = m.functions[next(iter(mid1.callees()))]
    assert helper in [m.functions[t] for t in mid2.tail_callees()]
    # what a function may change includes what the functions it continues in
    # change (every function returns all of S, so a tail call needs no more)
    assert set(helper.modifies) <= set(mid2.modifies) <= set(mid1.modifies) <= set(main.modifies)
    assert set(helper.modifies) == {2, 3, 4} and set(main.modifies) == {0, 1, 2, 3, 4}


@jit_only
@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("entry", [None, "mid1", "mid2"])
def test_results_match_the_interpreter(level: int, entry: str | None) -> None:
    want = outcome("interp", CHAIN, entry)
    assert outcome("jit", CHAIN, entry, opt_level=level) == want
    assert outcome("jit", CHAIN, entry, opt_level=level, fuel=10**6) == outcome("interp", CHAIN, entry, fuel=10**6)


@jit_only
@pytest.mark.parametrize("fuel", [7, 8, 9, 25])
def test_fuel_runs_out_at_the_same_place(fuel: int) -> None:
    assert outcome("jit", CHAIN, fuel=fuel) == outcome("interp", CHAIN, fuel=fuel)
    assert outcome("jit", SPIN, fuel=fuel) == outcome("interp", SPIN, fuel=fuel)


@jit_only
def test_endless_tail_call_cycle_times_out() -> None:
    registers, trap, _ = outcome("jit", SPIN, timeout=0.2)
    assert trap is not None and trap[0] is TrapKind.TIMEOUT
    p = verify(assemble(SPIN))
    m = lift(p)
    assert not any(b.loop_header for fn in m.functions.values() for b in fn.blocks.values())
    assert trap[1] in {pc for pc in p.functions if pc != p.entry}  # polled at a function entry
    assert registers["HL"] > 1000


@jit_only
def test_tail_calls_use_no_stack() -> None:
    registers, trap, _ = outcome("jit", PINGPONG, max_call_depth=1)
    assert trap is None and registers["HL"] == 999_999


def test_tail_calls_do_not_add_call_depth() -> None:
    m = lift(verify(assemble(PINGPONG)))
    f, g = sorted(pc for pc in m.functions if pc != m.entry)
    assert m.functions[f].tail_callees() == {g} and m.functions[g].tail_callees() == {f}
    assert call_depth_bound(m) == 1
    assert call_depth_bound(lift(verify(assemble(CHAIN)))) == 1
    assert call_depth_bound(lift(verify(assemble(SPIN)))) == 1


@pytest.mark.parametrize("fuel", [False, True])
def test_guaranteed_tail_calls_compile_for_aarch64(fuel: bool) -> None:
    from zjit.backends.llvm import CodegenOptions, lower
    from zjit.backends.objfile.compiler import compile_ir_inprocess
    from zjit.backends.targets import AARCH64_TRIPLE

    for src in (CHAIN, SPIN, PINGPONG):
        for level in (0, 2):
            text = lower(lift(verify(assemble(src))), CodegenOptions(
                triple=AARCH64_TRIPLE, opt_level=level, fuel=fuel)).text
            assert "musttail call preserve_nonecc" in text
            assert compile_ir_inprocess(text, triple=AARCH64_TRIPLE, opt_level=level)
