"""Fuel metering per basic block (isa.md 4.1), checked against hand counts."""

from __future__ import annotations

import pytest
from engine_harness import EngineCfg, load_asm, run_asm

from zjit.isa import TrapKind

# Blocks and costs, counted by hand:
#   0x00 main  LD, LD, LD(3 words = 1 instruction), CALL    cost 4  (entry)
#   0x18       FREE, DROP, RET                               cost 3  (follows a CALL)
#   0x24 f     ADD64, DEC, CPI, JR                           cost 4  (CALL and JR target)
#   0x34       RET                                           cost 1  (follows a JR)
# A run: 0x00 (4) + f three times (3 * 4) + 0x34 (1) + 0x18 (3) = 20.
CALLS = """
PUBLIC main
main:
    LD HL, 3
    LD A, 0
    LD BC, 0x123456789A
    CALL f
    FREE
    DROP A
    RET
f:
    ADD64 A, A, HL
    DEC HL
    CPI HL, 0
    JR ne, f
    RET
"""

# Blocks: 0x00 LD, LD(3 words) cost 2, falls through into the JR target 0x10;
#         0x10 INC, DEC, CPI, JR cost 4 (twice); 0x20 LD8U, RET cost 2.
# A run: 2 + 2 * 4 + 2 = 12; the load at 0x20 traps OOB when IX is out of bounds,
# after its block was charged (no refund).
FALLTHROUGH = """
PUBLIC main
main:
    LD HL, 2
    LD BC, 0x123456789A
loop:
    INC A
    DEC HL
    CPI HL, 0
    JR ne, loop
    LD8U DE, (IX+0)
    RET
"""


@pytest.mark.parametrize(("fuel", "trap_pc", "left"), [
    (20, None, 0),
    (100, None, 80),
    (19, 0x18, 2),    # 4 + 12 + 1 = 17 used, 0x18 needs 3 but 2 are left
    (16, 0x34, 0),    # 4 + 12 used, the RET block needs 1
    (7, 0x24, 3),     # 0x00 used 4, f needs 4
    (3, 0x00, 3),     # cannot even enter the entry block
    (0, 0x00, 0),
])
def test_fuel_hand_count(engine_cfg: EngineCfg, fuel: int, trap_pc: int | None, left: int) -> None:
    r, _ = run_asm(engine_cfg, CALLS, fuel=fuel)
    assert r.fuel_left == left
    if trap_pc is None:
        assert r.ok and r.reg("A") == 6
    else:
        assert r.trap is not None and r.trap.kind is TrapKind.FUEL and r.trap.pc == trap_pc


def test_fuel_trap_registers_are_those_before_the_block(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, CALLS, fuel=7)
    assert r.registers == {"HL": 3, "A": 0, "BC": 0x123456789A, "DE": 0, "IX": 0}
    r, _ = run_asm(engine_cfg, CALLS, fuel=19)
    assert r.registers == {"HL": 0, "A": 6, "BC": 0x123456789A, "DE": 0, "IX": 0}


def test_fall_through_and_no_refund_on_trap(engine_cfg: EngineCfg) -> None:
    ok, _ = run_asm(engine_cfg, FALLTHROUGH, fuel=12)
    assert ok.ok and ok.fuel_left == 0 and ok.reg("A") == 2
    r, _ = run_asm(engine_cfg, FALLTHROUGH, fuel=50, registers={"ix": 1 << 40})
    assert r.trap is not None and r.trap.kind is TrapKind.OOB and r.trap.pc == 0x20
    assert r.fuel_left == 50 - 12
    short, _ = run_asm(engine_cfg, FALLTHROUGH, fuel=11)
    assert short.trap is not None and short.trap.kind is TrapKind.FUEL
    assert short.trap.pc == 0x20 and short.fuel_left == 1


def test_policy_fuel_resets_every_run_and_unmetered_reports_none(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, CALLS, fuel=25).instantiate()
    assert inst.run().fuel_left == 5
    assert inst.run().fuel_left == 5
    assert inst.run(fuel=20).fuel_left == 0
    free = load_asm(engine_cfg, CALLS).instantiate()
    r = free.run()
    assert r.ok and r.fuel_left is None


def test_fuel_in_a_long_loop(engine_cfg: EngineCfg) -> None:
    # 0x00 LD (cost 1, falls into the loop); loop INC, CP, JR = 3 per iteration
    # (10000 iterations); 0x10 RET cost 1: 1 + 30000 + 1.
    prog = "PUBLIC main\nmain:\nLD DE, 10000\nloop:\nINC HL\nCP HL, DE\nJR ltu, loop\nRET\n"
    r, _ = run_asm(engine_cfg, prog, fuel=10**6)
    assert r.ok and r.fuel_left == 10**6 - 30002
