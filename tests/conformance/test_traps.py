"""Every trap kind with its exact pc, registers, fuel and details (isa.md 4)."""

from __future__ import annotations

import io
import threading
import time

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm

from zjit.errors import TrapError
from zjit.isa import TrapKind

DIV = export_main("""
    LD HL, 5
    LD DE, 0
    INC A
    DIVU BC, HL, DE
    LD A, 9
    RET
""")


def test_div0_pc_registers_fuel(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, DIV, fuel=100, registers={"bc": 77})
    assert r.trap is not None and r.trap.kind is TrapKind.DIV0
    assert (r.trap.pc, r.trap.address, r.trap.length) == (12, None, None)
    assert r.registers == {"HL": 5, "DE": 0, "A": 1, "BC": 77, "IX": 0}
    assert r.fuel_left == 100 - 6    # the whole block was charged on entry
    assert r.trap.code == 3 and r.status == "trap"


def test_oob_pc_registers_and_no_effect(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD A, 1\nST8 (HL+0), A\nLD DE, 2\nLD64 BC, (HL-8)\nRET")
    r, mem = run_asm(engine_cfg, prog, registers={"hl": 0x10000, "bc": 3}, mem_size=0x10000)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.pc, r.trap.address, r.trap.length) == (4, 0x10000, 1)
    assert r.registers == {"HL": 0x10000, "DE": 0, "A": 1, "BC": 3, "IX": 0}


def test_trap_source_line(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, DIV)
    assert r.trap is not None and r.trap.source == "test.s:6"


def test_raise_on_trap(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, DIV).instantiate()
    with pytest.raises(TrapError) as info:
        inst.run(raise_on_trap=True)
    assert info.value.result.trap.kind is TrapKind.DIV0


LOOP = export_main("loop:\nINC A\nJR loop")


def test_interrupt_before_run_traps_at_entry(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, LOOP, fuel=1000).instantiate()
    inst.interrupt()
    r = inst.call("main", hl=4)
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT and r.trap.pc == 0
    assert r.registers == {"HL": 4, "DE": 0, "A": 0, "BC": 0, "IX": 0}
    assert r.fuel_left == 1000
    # the interrupt was delivered: the next run is not affected (it runs out of fuel)
    r2 = inst.run()
    assert r2.trap is not None and r2.trap.kind is TrapKind.FUEL


def test_interrupt_from_another_thread(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, LOOP).instantiate()
    timer = threading.Timer(0.2, inst.interrupt)
    timer.start()
    t0 = time.monotonic()
    r = inst.run()
    timer.join()
    assert time.monotonic() - t0 < 10
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT and r.trap.pc == 0
    assert r.reg("A") > 0


def test_policy_timeout(engine_cfg: EngineCfg) -> None:
    t0 = time.monotonic()
    r, _ = run_asm(engine_cfg, LOOP, timeout=0.2)
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT and r.trap.pc == 0
    assert 0.15 < time.monotonic() - t0 < 10


def test_timeout_applies_to_each_run(engine_cfg: EngineCfg) -> None:
    quick = export_main("LD A, 1\nRET")
    inst = load_asm(engine_cfg, quick, timeout=0.05).instantiate()
    assert inst.run().ok
    time.sleep(0.1)
    assert inst.run().ok   # a fresh deadline per run


class Boom(Exception):
    pass


def _raise(*_: object) -> bytes:
    raise Boom("handler failed")


CTL = export_main("""
    LD HL, 0x100
    LD DE, 4
    LD BC, 0x200
    LD IX, 16
    CTL
    LD A, 1
    RET
""")


def test_host_trap_from_ctl_chains_the_exception(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, CTL).instantiate(ctl=_raise)
    r = inst.run()
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 16
    assert isinstance(r.trap.cause, Boom)
    assert r.registers == {"HL": 0x100, "DE": 4, "BC": 0x200, "IX": 16, "A": 0}
    with pytest.raises(TrapError) as info:
        inst.run(raise_on_trap=True)
    assert isinstance(info.value.__cause__, Boom)


def test_host_trap_from_log_sink(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD DE, 1\nLOG\nLD A, 1\nRET")
    r, _ = run_asm(engine_cfg, prog, log=_raise)
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 4
    assert isinstance(r.trap.cause, Boom) and r.reg("A") == 0


class BadStream(io.RawIOBase):
    def write(self, b: object) -> int:
        raise OSError("disk full")

    def read(self, n: int = -1) -> bytes:
        raise OSError("no input")


def test_host_trap_from_output_stream(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD DE, 2\nOUT\nRET")
    r, _ = run_asm(engine_cfg, prog, stdout=BadStream())
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 4
    assert isinstance(r.trap.cause, OSError)


def test_host_trap_from_input_stream_leaves_hl(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD HL, 0x300\nLD DE, 8\nIN\nRET")
    r, mem = run_asm(engine_cfg, prog, stdin=BadStream())
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 8
    assert r.reg("HL") == 0x300 and mem[0x300:0x308] == bytes(8)


def test_output_before_a_trap_is_kept(engine_cfg: EngineCfg) -> None:
    prog = export_main("LD HL, msg\nLD DE, 2\nOUT\nDIVU A, A, IX\nRET\nmsg: DB \"ok\"")
    r, _ = run_asm(engine_cfg, prog)
    assert r.trap is not None and r.trap.kind is TrapKind.DIV0
    assert r.stdout == b"ok"
