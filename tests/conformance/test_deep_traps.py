"""A trap deep in a call chain reports the exact pc, registers, fuel and output
(issue 10): every trap kind, five guest calls down, on every engine.

The compiling engines leave a call chain through one non-local exit (no caller
tests anything after a CALL), so the state a trap reports is what the trapping
function had, not what its callers pass back. Each level writes one byte of
output (buffered natively by the compiling engines, so the bytes before the
trap must come out, in order) and changes A and BC; the level-5 function then
traps in the way its mode (IX) selects.
"""

from __future__ import annotations

import threading

import pytest
from engine_harness import EngineCfg, engine_for, image_of, load_asm, run_asm

import zjit
from zjit.asm import assemble
from zjit.image import SegmentDesc
from zjit.isa import TrapKind

CHAIN = """
        PUBLIC main
        PUBLIC oob
        PUBLIC div0
        PUBLIC depth
        PUBLIC wp
        PUBLIC host
        PUBLIC spin
        PUBLIC fuel
msg:    DB "12345"
main:   RET
oob:    LD IX, 1
        JR go
div0:   LD IX, 2
        JR go
depth:  LD IX, 3
        JR go
wp:     LD IX, 4
        JR go
host:   LD IX, 5
        JR go
spin:   LD IX, 6
        JR go
fuel:   LD IX, 7
go:     LD A, 0
        LD BC, 0
        CALL l1
        RET
l1:     LD HL, msg
        LD DE, 1
        OUT
        INC A
        ADD64 BC, BC, A
        CALL l2
        INC A
        RET
l2:     LD HL, msg+1
        OUT
        INC A
        ADD64 BC, BC, A
        CALL l3
        INC A
        RET
l3:     LD HL, msg+2
        OUT
        INC A
        ADD64 BC, BC, A
        CALL l4
        INC A
        RET
l4:     LD HL, msg+3
        OUT
        INC A
        ADD64 BC, BC, A
        CALL l5                 ; trap depth
        INC A
        RET
l5:     LD HL, msg+4
        OUT
        INC A
        ADD64 BC, BC, A
        CPI IX, 1
        JR eq, t_oob
        CPI IX, 2
        JR eq, t_div
        CPI IX, 4
        JR eq, t_wp
        CPI IX, 5
        JR eq, t_host
        CPI IX, 6
        JR eq, t_spin
        RET
t_oob:  LD HL, 0x7fffff00
        LD64 DE, (HL+8)         ; trap oob
        RET
t_div:  LD DE, 0
        DIVS HL, BC, DE         ; trap div0
        RET
t_wp:   LD HL, 0x8004
        ST8 (HL), A             ; trap wp
        RET
t_host: LD DE, 1
        LOG                     ; trap host
        RET
t_spin: JR t_spin
"""
RO = (SegmentDesc("ro", 0x8000, 16, "r", b"read-only"),)
MSG = 0x1000  # the assembler puts data at 0x1000
LEVEL5 = {"HL": MSG + 4, "DE": 1, "A": 5, "BC": 15}
"""Registers when level 5 dispatches (A = 1+1+1+1+1, BC = 1+2+3+4+5)."""
FUEL = 100_000


def _pc(label: str) -> int:
    """The pc of the instruction on the line of ``label:`` or ending ``; trap <label>``."""
    image = assemble(CHAIN, "test.s")
    line = next(n for n, text in enumerate(CHAIN.splitlines(), 1)
                if text.startswith(label + ":") or text.endswith("; " + label))
    return next(pc for pc, d in image.debug.items() if d.line == line)


def _reference(entry: str, fuel: int | None = FUEL, log: object = None, **policy: object) -> zjit.Result:
    inst = zjit.Engine(zjit.Policy(use_cache=False, **policy), backend="interp").load(
        image_of(CHAIN, RO)).instantiate(log=log)
    return inst.call(entry, fuel=fuel)


def _check(r: zjit.Result, kind: TrapKind, pc: int, regs: dict[str, int], output: bytes,
           want: zjit.Result) -> None:
    assert r.trap is not None and r.trap.kind is kind, r
    assert r.trap.pc == pc
    assert r.registers == regs
    assert r.stdout == output
    assert r.fuel_left == want.fuel_left  # the interpreter's count (the oracle)
    assert r == want


def test_oob_deep(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, CHAIN, call="oob", fuel=FUEL, segments=RO)
    _check(r, TrapKind.OOB, _pc("trap oob"), {**LEVEL5, "HL": 0x7FFFFF00, "IX": 1}, b"12345",
           _reference("oob"))
    assert (r.trap.address, r.trap.length) == (0x7FFFFF08, 8)  # type: ignore[union-attr]


def test_div0_deep(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, CHAIN, call="div0", fuel=FUEL, segments=RO)
    _check(r, TrapKind.DIV0, _pc("trap div0"), {**LEVEL5, "DE": 0, "IX": 2}, b"12345", _reference("div0"))


def test_write_protect_deep(engine_cfg: EngineCfg) -> None:
    r, mem = run_asm(engine_cfg, CHAIN, call="wp", fuel=FUEL, segments=RO)
    _check(r, TrapKind.WRITE_PROTECT, _pc("trap wp"), {**LEVEL5, "HL": 0x8004, "IX": 4}, b"12345",
           _reference("wp"))
    assert (r.trap.address, r.trap.length) == (0x8004, 1)  # type: ignore[union-attr]
    assert mem[0x8000:0x8009] == b"read-only"


def test_call_depth_deep(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, CHAIN, call="depth", fuel=FUEL, segments=RO, max_call_depth=4)
    # go -> l1 -> l2 -> l3 -> l4 nest four deep; l4's CALL of l5 is the fifth
    regs = {"HL": MSG + 3, "DE": 1, "A": 4, "BC": 10, "IX": 3}
    _check(r, TrapKind.CALL_DEPTH, _pc("trap depth"), regs, b"1234", _reference("depth", max_call_depth=4))


def test_host_deep(engine_cfg: EngineCfg) -> None:
    def broken(topic: bytes, message: bytes) -> None:
        raise ValueError(f"log handler failed on {topic!r}")

    r, _ = run_asm(engine_cfg, CHAIN, call="host", fuel=FUEL, segments=RO, log=broken)
    _check(r, TrapKind.HOST, _pc("trap host"), {**LEVEL5, "DE": 1, "IX": 5}, b"12345", _reference("host", log=broken))
    assert isinstance(r.trap.cause, ValueError) and "b'5'" in str(r.trap.cause)  # type: ignore[union-attr]
    assert r.log == ((b"5", bytes(5)),)  # recorded before the sink raised


def test_fuel_runs_out_deep(engine_cfg: EngineCfg) -> None:
    # the smallest fuel that runs out inside level 5 (found on the interpreter)
    l5 = _pc("l5")
    for fuel in range(200):
        want = _reference("fuel", fuel)
        if want.trap is not None and want.trap.pc >= l5:
            break
    else:
        raise AssertionError("no fuel runs out in level 5")
    r, _ = run_asm(engine_cfg, CHAIN, call="fuel", fuel=fuel, segments=RO)
    _check(r, TrapKind.FUEL, l5, {"HL": MSG + 3, "DE": 1, "A": 4, "BC": 10, "IX": 7}, b"1234", want)
    assert r.fuel_left is not None and r.fuel_left < 10  # not enough for level 5's first block


def test_timeout_deep(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, CHAIN, segments=RO).instantiate(log=None)
    timer = threading.Timer(0.2, inst.interrupt)
    timer.start()
    try:
        r = inst.call("spin")
    finally:
        timer.cancel()
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT, r
    assert r.trap.pc == _pc("t_spin")  # the loop header, the only block that runs
    assert r.registers == {**LEVEL5, "IX": 6}
    assert r.stdout == b"12345"
    assert r.fuel_left is None


@pytest.mark.parametrize("entry", ["oob", "div0", "wp"])
def test_deep_traps_leave_the_instance_usable(engine_cfg: EngineCfg, entry: str) -> None:
    # the non-local exit leaves nothing behind: the next run of the same
    # instance starts from a clean state and ends normally
    inst = engine_for(engine_cfg).load(image_of(CHAIN, RO)).instantiate(log=None)
    assert inst.call(entry).trap is not None
    again = inst.call("fuel")
    assert again.ok and again.stdout == b"12345" and again.registers["A"] == 9
