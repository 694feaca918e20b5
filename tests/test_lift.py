"""The lifter: VerifiedProgram -> SSA IR (functions, blocks, phis, folding)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zjit.backends.middle.guest import LIFTER_ONLY, intra_successors, operands_of
from zjit.backends.middle.ir import (
    CMPL,
    ENTRY,
    Branch,
    Call,
    Const,
    Jump,
    Ret,
    Value,
    format_module,
)
from zjit.backends.middle.lift import lift, lift_function
from zjit.verifier import VerifiedProgram, verify

import zjit
from zjit.asm import assemble
from zjit.isa import BY_MNEMONIC, MASK64, OPS, Family

LOOP = """
    PUBLIC main
main:
    LD HL, 10
    LD DE, 0
loop:
    ADD DE, DE, HL
    DEC HL
    CPI HL, 0
    JR ne, loop
    CALL f
    RET
f:
    MOV BC, DE
    RET
"""


def prog(src: str) -> VerifiedProgram:
    return verify(assemble(src))


def test_one_function_per_guest_function() -> None:
    p = prog(LOOP)
    m = lift(p)
    assert sorted(m.functions) == sorted(p.functions)
    assert m.functions[p.entry].names == ("<entry>", "main")


def test_blocks_are_verifier_blocks_reachable_in_function() -> None:
    p = prog(LOOP)
    m = lift(p)
    for entry, fn in m.functions.items():
        for b in fn.blocks.values():
            vb = p.blocks[b.pc]
            assert (b.end, b.cost) == (vb.end, vb.cost)
        # exactly the blocks reachable through intra-function edges
        seen, todo = set(), [entry]
        while todo:
            pc = todo.pop()
            if pc not in seen:
                seen.add(pc)
                todo.extend(intra_successors(p.blocks[pc]))
        assert set(fn.blocks) == seen
        assert next(iter(fn.blocks)) == entry  # entry block first


def test_shared_code_is_duplicated_into_each_function() -> None:
    src = """
    PUBLIC main
main:
    CALL fa
    CALL fb
    RET
fa:
    LD HL, 1
    JR common
fb:
    LD HL, 2
common:
    INC HL
    RET
"""
    p = prog(src)
    m = lift(p)
    common = p.by_pc[max(p.by_pc) - 4].pc  # the INC
    owners = [fn.entry for fn in m.functions.values() if common in fn.blocks]
    assert len(owners) == 2


def test_loop_header_has_phis_only_for_changed_state() -> None:
    p = prog(LOOP)
    fn = lift(p).functions[p.entry]
    header = next(b for b in fn.blocks.values() if b.loop_header)
    vars_with_phi = {phi.var for phi in header.phis}
    # HL and DE change in the loop; CMP changes; A, BC, IX do not.
    assert vars_with_phi == {0, 1, 5, 6}
    assert header.check_interrupt
    for b in fn.blocks.values():
        if len([x for x in b.preds if x != ENTRY]) <= 1 and ENTRY not in b.preds:
            assert not b.phis


def test_phi_incoming_follow_predecessors() -> None:
    p = prog(LOOP)
    fn = lift(p).functions[p.entry]
    for b in fn.blocks.values():
        for phi in b.phis:
            assert [src for src, _ in phi.incoming] == b.preds


def test_mov_ld_drop_are_renamings() -> None:
    p = prog("""
    LD HL, 5
    MOV DE, HL
    DROP DE
    RET
""")
    fn = lift(p).functions[0]
    (b,) = fn.blocks.values()
    assert b.insts == []
    assert isinstance(b.term, Ret)
    assert b.term.state[0] == Const(5, "i64")
    assert b.term.state[1] == Const(5, "i64")


def test_constants_are_folded() -> None:
    p = prog("""
    LD HL, 7
    LD DE, -3
    DIVS A, HL, DE
    ROL64 BC, DE, 4
    CPI HL, 9
    RET
""")
    (b,) = lift(p).functions[0].blocks.values()
    assert b.insts == []
    st8 = b.term.state
    assert st8[2] == Const((-2) & 0xFFFF_FFFF, "i64")
    assert st8[3] == Const((((-3) & MASK64) << 4 | ((-3) & MASK64) >> 60) & MASK64, "i64")
    assert st8[CMPL] == Const(7, "i32") and st8[CMPL + 1] == Const(9, "i32")


def test_division_by_constant_zero_is_not_folded() -> None:
    p = prog("""
    LD HL, 7
    LD DE, 0
    DIVU A, HL, DE
    RET
""")
    (b,) = lift(p).functions[0].blocks.values()
    assert [i.op.mnemonic for i in b.insts] == ["DIVU"]


def test_trap_registers_are_those_before_the_instruction() -> None:
    p = prog("""
    LD HL, 0x100
    LD8U HL, (HL+1)
    ST8 (HL), HL
    RET
""")
    (b,) = lift(p).functions[0].blocks.values()
    load, store = b.insts
    assert load.regs[0] == Const(0x100, "i64")
    assert store.regs[0] is load.dests[0]


def test_calls_and_recursion_marking() -> None:
    src = """
    PUBLIC main
main:
    LD BC, 7
    CALL leaf
    CALL rec
    RET
leaf:
    INC HL
    RET
rec:
    DEC DE
    CPI DE, 0
    JR eq, out
    CALL rec
out:
    RET
"""
    p = prog(src)
    m = lift(p)
    main = m.functions[p.entry]
    calls = [b.term for b in main.blocks.values() if isinstance(b.term, Call)]
    assert [c.cyclic for c in calls] == [False, False]
    rec = m.functions[max(m.functions)]
    (rc,) = [b.term for b in rec.blocks.values() if isinstance(b.term, Call)]
    assert rc.cyclic and rc.callee == rec.entry
    leaf = next(f for f in m.functions.values() if f.entry not in (p.entry, rec.entry))
    assert not leaf.blocks[leaf.entry].check_interrupt  # leaf without loops: no poll
    assert not main.blocks[main.entry].check_interrupt  # caller off any call cycle: no poll
    assert rec.blocks[rec.entry].check_interrupt        # on a cycle of calls: polls at entry
    # The callee hands the whole state back: the caller continues with the returned
    # values, except constants the callee does not modify (BC stays 7).
    c0 = calls[0]
    assert leaf.modifies == (0,)
    assert c0.mods == (0, 1, 2, 4, 5, 6)
    nxt = main.blocks[c0.next]
    assert nxt.entry_state[3] == Const(7, "i64")
    assert [nxt.entry_state[v] for v in c0.mods] == c0.dests
    # DE; CMP too, but no caller reads it after a call, so it is not in the set
    assert rec.modifies == (1,)
    assert main.modifies == (0, 1, 3)  # its own BC and, through its callees, HL and DE


def test_cmp_returned_only_when_a_caller_reads_it() -> None:
    src = """
    PUBLIC main
main:
    CALL setter
    JR eq, yes
    CALL setter2
    CPI HL, 1
    JR eq, yes
yes:
    RET
setter:
    CPI HL, 0
    RET
setter2:
    CPI HL, 5
    RET
"""
    p = prog(src)
    m = lift(p)
    by_name = {fn.entry: fn for fn in m.functions.values()}
    setter, setter2 = (by_name[pc] for pc in sorted(by_name)[1:])
    assert set(setter.modifies) == {5, 6}   # main branches on it after the call
    assert setter2.modifies == ()           # main compares again before branching


def test_branch_terminators() -> None:
    p = prog("""
    CPI HL, 3
    JR lt, la
    JR al, lb
la:
    RET
lb:
    JR lb2
lb2:
    RET
""")
    fn = lift(p).functions[0]
    terms = [b.term for b in fn.blocks.values()]
    assert any(isinstance(t, Branch) and t.cond == 3 for t in terms)
    assert any(isinstance(t, Jump) and t.pc is not None for t in terms)


def test_values_unique_and_defined_once() -> None:
    p = prog(LOOP)
    for fn in lift(p).functions.values():
        defined: list[int] = [v.id for v in fn.params]
        for b in fn.blocks.values():
            defined += [phi.dest.id for phi in b.phis]
            for ins in b.insts:
                defined += [d.id for d in ins.dests]
            if isinstance(b.term, Call):
                defined += [d.id for d in b.term.dests]
        assert len(defined) == len(set(defined))
        assert max(defined) < fn.nvalues


def test_operands_cover_every_opcode() -> None:
    for op in OPS:
        from zjit.encoding import Instr

        reads, writes = operands_of(Instr(0, op, 1, 2, 3, 0))
        assert all(0 <= r < 7 for r in reads + writes), op.mnemonic
    assert {k[0] for k in LIFTER_ONLY} == {Family.MOV, Family.LDI, Family.NOP}


def test_printer_and_cli(tmp_path: Path) -> None:
    p = prog(LOOP)
    text = format_module(lift(p))
    assert "function f_0 (<entry>, main)" in text
    assert "= phi HL" in text and "loop-header" in text
    assert "call f_" in text
    src = tmp_path / "loop.s"
    src.write_text(LOOP)
    out = tmp_path / "loop.zasm.bin"
    run = [sys.executable, "-m", "zjit"]
    assert subprocess.run([*run, "asm", str(src), "-o", str(out)], capture_output=True).returncode == 0
    res = subprocess.run([*run, "disasm", "--ir", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "function f_0" in res.stdout and "phi" in res.stdout


def test_lift_function_single() -> None:
    p = prog(LOOP)
    f = lift_function(p, p.functions[-1])
    assert isinstance(f.params[0], Value) and len(f.params) == 7


_FOLD_OPS = [o.mnemonic for o in OPS if o.family in (Family.ALU, Family.DIV, Family.SHIFT,
                                                      Family.BITCOUNT, Family.CMPSET, Family.INCDEC)]
_VALUES = st.sampled_from([0, 1, 2, 3, 7, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32,
                           (1 << 63) - 1, 1 << 63, MASK64, MASK64 - 1]) | st.integers(0, MASK64)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_FOLD_OPS), _VALUES, _VALUES, st.integers(0, 63))
def test_folding_matches_the_interpreter(mnem: str, a: int, b: int, count: int) -> None:
    """Folded constants equal what the interpreter computes for the same instruction."""
    op = BY_MNEMONIC[mnem]
    if op.family is Family.SHIFT:
        text = f"{mnem} A, HL, {count % op.width}"
    elif op.family in (Family.BITCOUNT, Family.INCDEC):
        text = f"{mnem} HL\n    MOV A, HL"
    else:
        text = f"{mnem} A, HL, DE"
    src = f"    LD HL, {a}\n    LD DE, {b}\n    {text}\n    RET\n"
    image = assemble(src)
    p = verify(image)
    (blk,) = lift(p).functions[0].blocks.values()
    folded = blk.term.state[2]
    res = zjit.Engine(zjit.Policy(use_cache=False), backend="interp").load(image).instantiate().run()
    if res.trap is not None:
        assert op.family is Family.DIV and not isinstance(folded, Const)
        return
    assert isinstance(folded, Const), mnem
    assert folded.value == res.registers["A"], (mnem, a, b)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__]))
