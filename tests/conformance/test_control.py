"""Compare, branch and call semantics (isa.md 2.2, 2.3)."""

from __future__ import annotations

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm
from model import M64, to_signed

from zjit.isa import COND_NAMES, TrapKind

JR_PROGRAM = """
PUBLIC main
main:
    CP HL, DE
    JR {cond}, yes
    LD A, 0
    RET
yes:
    LD A, 1
    RET
"""

PAIRS = [
    (0, 0), (1, 2), (2, 1), (5, 5),
    (0x7FFF_FFFF, M64),          # INT_MAX vs -1: signed gt, unsigned lt
    (M64, 0x7FFF_FFFF),
    (0x8000_0000, 1),            # INT_MIN vs 1: signed lt, unsigned gt
    (1, 0x8000_0000),
    (0x7FFF_FFFF, 0x8000_0000),  # subtraction overflows: a flags-based test gets this wrong
    (0x8000_0000, 0x7FFF_FFFF),
    (0xFFFF_FFFF, 0), (0, 0xFFFF_FFFF),
    (0x1_0000_0005, 5),          # high halves are ignored
    (0x5, 0xFFFF_FFFF_0000_0005),
    (0x8000_0000, 0x8000_0000),
]


def holds(cond: str, x: int, y: int) -> bool:
    """The JR condition on CMP = (lo32 x, lo32 y): a true comparison."""
    ux, uy = x & 0xFFFF_FFFF, y & 0xFFFF_FFFF
    sx, sy = to_signed(ux, 32), to_signed(uy, 32)
    return {"al": True, "eq": ux == uy, "ne": ux != uy, "lt": sx < sy, "le": sx <= sy,
            "gt": sx > sy, "ge": sx >= sy, "ltu": ux < uy, "leu": ux <= uy,
            "gtu": ux > uy, "geu": ux >= uy}[cond]


@pytest.mark.parametrize("cond", COND_NAMES)
def test_every_jr_condition(engine_cfg: EngineCfg, cond: str) -> None:
    inst = load_asm(engine_cfg, JR_PROGRAM.format(cond=cond)).instantiate()
    for x, y in PAIRS:
        r = inst.call("main", hl=x, de=y)
        assert r.reg("A") == int(holds(cond, x, y)), f"JR {cond} after CP {x:#x}, {y:#x}"


def test_jr_hand_cases(engine_cfg: EngineCfg) -> None:
    # lhs = 0x7FFFFFFF, rhs = -1: lt is false (INT_MAX > -1), ltu is true.
    assert not holds("lt", 0x7FFF_FFFF, M64) and holds("ltu", 0x7FFF_FFFF, M64)
    lt = load_asm(engine_cfg, JR_PROGRAM.format(cond="lt")).instantiate()
    ltu = load_asm(engine_cfg, JR_PROGRAM.format(cond="ltu")).instantiate()
    assert lt.call("main", hl=0x7FFF_FFFF, de=-1).reg("A") == 0
    assert ltu.call("main", hl=0x7FFF_FFFF, de=-1).reg("A") == 1
    assert lt.call("main", hl=0x8000_0000, de=0x7FFF_FFFF).reg("A") == 1
    assert ltu.call("main", hl=0x8000_0000, de=0x7FFF_FFFF).reg("A") == 0


@pytest.mark.parametrize(("imm", "hl", "cond", "taken"), [
    (-1, 0xFFFF_FFFF, "eq", True),      # rhs is lo32(sx(-1)) = 0xFFFFFFFF
    (-1, M64, "eq", True),
    (-1, 0xFFFF_FFFE, "lt", True),
    (-1, 0, "ltu", True),               # 0 <u 0xFFFFFFFF
    (-2048, 0xFFFF_F800, "eq", True),
    (2047, 2047, "eq", True),
    (2047, 0x1_0000_07FF, "eq", True),
    (0, 0x8000_0000, "lt", True),
    (0, 0x8000_0000, "gtu", True),
])
def test_cpi(engine_cfg: EngineCfg, imm: int, hl: int, cond: str, taken: bool) -> None:
    prog = JR_PROGRAM.format(cond=cond).replace("CP HL, DE", f"CPI HL, {imm}")
    r, _ = run_asm(engine_cfg, prog, registers={"hl": hl})
    assert r.reg("A") == int(taken)


CMP_STATE = """
PUBLIC main
PUBLIC setcmp
PUBLIC check
main:
    CP HL, DE
    EQ A, HL, HL       ; compare-set does not touch CMP
    CALL sub           ; CMP survives CALL (it is global state)
    RET
sub:
    JR eq, same
    LD IX, 2
    RET
same:
    LD IX, 1
    RET
setcmp:
    CPI HL, 7
    RET
check:
    JR eq, same2       ; CMP starts as (0, 0) on every run
    LD IX, 2
    RET
same2:
    LD IX, 1
    RET
"""


def test_cmp_is_global_and_reset_per_run(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, CMP_STATE).instantiate()
    assert inst.call("main", hl=3, de=4).reg("IX") == 2
    assert inst.call("main", hl=4, de=4).reg("IX") == 1
    assert inst.call("setcmp", hl=3).ok
    assert inst.call("check").reg("IX") == 1


NESTED = """
PUBLIC main
main:
    LD BC, 0x200        ; trace pointer
    LD IX, 1
    CALL trace
    CALL f
    LD IX, 5
    CALL trace
    RET
f:
    LD IX, 2
    CALL trace
    CALL g
    LD IX, 4
    CALL trace
    RET
g:
    LD IX, 3
    CALL trace
    RET
trace:
    ST8 (BC), IX
    INC BC
    RET
"""


def test_nested_calls_return_to_the_next_instruction(engine_cfg: EngineCfg) -> None:
    r, mem = run_asm(engine_cfg, NESTED)
    assert r.ok
    assert mem[0x200:0x206] == bytes([1, 2, 3, 4, 5, 0])
    assert r.reg("BC") == 0x205


RECURSE = """
PUBLIC main
main:
    CALL f
    RET
f:                  ; the k-th activation runs with k return pcs on the stack
    INC HL
    CP HL, DE
    JR geu, done
    CALL f
done:
    RET
"""


def test_call_depth_limit_is_exact(engine_cfg: EngineCfg) -> None:
    ok, _ = run_asm(engine_cfg, RECURSE, registers={"de": 1024})
    assert ok.ok and ok.reg("HL") == 1024
    r, _ = run_asm(engine_cfg, RECURSE, registers={"de": 1025})
    assert r.trap is not None and r.trap.kind is TrapKind.CALL_DEPTH
    assert r.reg("HL") == 1024


def test_call_depth_small_limit(engine_cfg: EngineCfg) -> None:
    prog = export_main("CALL f\nRET\nf:\nINC HL\nCALL f\nRET")
    r, _ = run_asm(engine_cfg, prog, max_call_depth=3)
    assert r.trap is not None and r.trap.kind is TrapKind.CALL_DEPTH
    assert r.trap.pc == 12           # the CALL inside f (f is at 8)
    assert r.reg("HL") == 3          # three activations of f ran their INC
    z, _ = run_asm(engine_cfg, prog, max_call_depth=0)
    assert z.trap is not None and z.trap.kind is TrapKind.CALL_DEPTH and z.trap.pc == 0
    assert z.reg("HL") == 0


def test_ret_on_empty_stack_ends_the_run(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD HL, 1\nRET\nLD HL, 2\nRET")
    r, _ = run_asm(engine_cfg, prog)
    assert r.ok and r.reg("HL") == 1


def test_backward_loop(engine_cfg: EngineCfg) -> None:
    prog = export_main("""
    loop:
        ADD64 A, A, HL
        DEC HL
        CPI HL, 0
        JR ne, loop
        RET
    """)
    r, _ = run_asm(engine_cfg, prog, registers={"hl": 100})
    assert r.reg("A") == 5050 and r.reg("HL") == 0


def test_entry_and_exports(engine_cfg: EngineCfg) -> None:
    prog = """
    PUBLIC main
    PUBLIC other
    other:
        LD A, 7
        RET
    main:
        LD A, 9
        RET
    """
    mod = load_asm(engine_cfg, prog)
    inst = mod.instantiate()
    assert inst.run().reg("A") == 9
    assert inst.call("other").reg("A") == 7
    assert inst.call("main", a=3).reg("A") == 9
