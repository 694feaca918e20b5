"""Bounded output (interfaces.md, issue 13): captured output plus kept log records at
most ``Policy.max_output_bytes`` per run; the OUT or LOG past it traps HOST with
nothing of it kept, identically on every engine. Output to a stream is not
counted. CTL handler results outside ``-2**63 ..= -1`` give -1."""

from __future__ import annotations

import io
import tracemalloc
from typing import Any

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm
from model import M64

from zjit.isa import TrapKind
from zjit.machine import OutputLimitError
from zjit.policy import DEFAULT_MAX_OUTPUT_BYTES, LOG_RECORD_BYTES
from zjit.result import Result

# OUT "hello" (5), LOG topic "net" message "hello" (3 + 5 + 16 for the record), OUT "hello" (5): 34 bytes.
# Every instruction is one block (no branches), so fuel is charged once, on entry.
PROGRAM = export_main("""
    LD HL, msg
    LD DE, 5
    OUT
    LD HL, topic
    LD DE, 3
    LD BC, msg
    LD IX, 5
    LOG
    LD HL, msg
    LD DE, 5
    OUT
    INC A
    RET
topic: DB "net"
msg: DB "hello"
""")
TOTAL = 34
FUEL = 1000
COST = 13


def _pcs(cfg: EngineCfg) -> tuple[int, int, int]:
    """The pcs of the first OUT, the LOG and the second OUT (from the module's code)."""
    program = load_asm(cfg, PROGRAM).program
    pcs = [i.pc for i in program.instrs if i.op.mnemonic in ("OUT", "LOG")]
    assert len(pcs) == 3
    return pcs[0], pcs[1], pcs[2]


def _run(cfg: EngineCfg, limit: int, **io_args: Any) -> Result:
    r, _ = run_asm(cfg, PROGRAM, fuel=FUEL, max_output_bytes=limit, **io_args)
    return r


def _assert_limit_trap(r: Result, pc: int, limit: int) -> None:
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == pc
    assert isinstance(r.trap.cause, OutputLimitError) and r.trap.cause.limit == limit
    assert "max_output_bytes" in str(r.trap.cause) and str(limit) in str(r.trap.cause)
    assert r.fuel_left == FUEL - COST     # the block was charged, as for any trap inside it


def test_default_limit() -> None:
    from zjit.policy import Policy

    assert Policy().max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 64 << 20


def test_output_and_log_exactly_at_the_limit_run(engine_cfg: EngineCfg) -> None:
    r = _run(engine_cfg, TOTAL)
    assert r.ok and r.stdout == b"hellohello" and r.log == ((b"net", b"hello"),)
    assert r.fuel_left == FUEL - COST and r.reg("A") == 1


def test_one_byte_past_the_limit_at_the_last_out(engine_cfg: EngineCfg) -> None:
    _, _, out2 = _pcs(engine_cfg)
    r = _run(engine_cfg, TOTAL - 1)
    _assert_limit_trap(r, out2, TOTAL - 1)
    assert r.stdout == b"hello" and r.log == ((b"net", b"hello"),)    # nothing of the last OUT
    assert r.registers == {"HL": 0x1003, "DE": 5, "A": 0, "BC": 0x1003, "IX": 5}


def test_one_byte_past_the_limit_at_the_log(engine_cfg: EngineCfg) -> None:
    _, log_pc, _ = _pcs(engine_cfg)
    seen: list[tuple[bytes, bytes]] = []
    r = _run(engine_cfg, 5 + 8 - 1, log=lambda t, m: seen.append((t, m)))
    _assert_limit_trap(r, log_pc, 12)
    assert r.stdout == b"hello" and r.log == () and seen == []     # the sink got nothing either
    assert r.registers == {"HL": 0x1000, "DE": 3, "A": 0, "BC": 0x1003, "IX": 5}


def test_one_byte_past_the_limit_at_the_first_out(engine_cfg: EngineCfg) -> None:
    out1, _, _ = _pcs(engine_cfg)
    r = _run(engine_cfg, 4)
    _assert_limit_trap(r, out1, 4)
    assert r.stdout == b"" and r.log == ()
    assert r.registers == {"HL": 0x1003, "DE": 5, "A": 0, "BC": 0, "IX": 0}


@pytest.mark.parametrize("limit", [0, 4, 28, 29, 33, 34])
def test_every_engine_gives_the_interpreters_result(engine_cfg: EngineCfg, limit: int) -> None:
    from engine_harness import CONFIGS

    interp = next(c for c in CONFIGS if c.backend == "interp")
    assert _run(engine_cfg, limit) == _run(interp, limit)   # trap, pc, registers, fuel, output, log


def test_the_budget_is_per_run(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, PROGRAM, max_output_bytes=TOTAL).instantiate(log=None)
    for _ in range(3):
        r = inst.run()
        assert r.ok and r.stdout == b"hellohello" and len(r.log) == 1


def test_output_to_a_stream_is_not_counted(engine_cfg: EngineCfg) -> None:
    sink = io.BytesIO()
    r = _run(engine_cfg, 24, stdout=sink)    # the log record (3 + 5 + 16 bytes) alone is counted
    assert r.ok and r.stdout == b"" and sink.getvalue() == b"hellohello" and len(r.log) == 1
    _, log_pc, _ = _pcs(engine_cfg)
    sink = io.BytesIO()
    r = _run(engine_cfg, 23, stdout=sink)
    _assert_limit_trap(r, log_pc, 23)
    assert sink.getvalue() == b"hello" and r.log == ()


def test_limit_zero_allows_empty_output_only(engine_cfg: EngineCfg) -> None:
    src = export_main("OUT\nLD BC, 0\nLD IX, 0\nLOG\nRET")
    log_pc = 0xC   # OUT, LD BC, LD IX, LOG: one word each
    inst = load_asm(engine_cfg, src, max_output_bytes=0).instantiate(log=None)
    r = inst.call("main", hl=0x100, de=0x1_0000_0000)    # length 0 (low 32 bits): the OUT passes
    assert r.trap is not None and r.trap.pc == log_pc    # an empty LOG record still counts 16 bytes
    assert isinstance(r.trap.cause, OutputLimitError) and r.stdout == b"" and r.log == ()
    r = inst.call("main", hl=0x100, de=1)
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 0
    assert isinstance(r.trap.cause, OutputLimitError) and r.stdout == b""


def test_empty_log_records_count(engine_cfg: EngineCfg) -> None:
    """Empty LOGs in a loop cannot pile up records: each counts 16 bytes."""
    src = export_main("LD BC, 0\nLD IX, 0\nloop: LOG\nINC A\nJR loop")
    r, _ = run_asm(engine_cfg, src, fuel=FUEL, max_output_bytes=16 * 10 + 15)
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and isinstance(r.trap.cause, OutputLimitError)
    assert r.reg("A") == 10 and r.log == ((b"", b""),) * 10


# Large OUTs: the compiled engines' output buffer (64 KiB) is passed, so OUT goes
# through the host call as well as through the native buffer.
BIG = export_main("""
    LD HL, 0
    LD DE, 0x10
    OUT
    LD DE, 0x30000
    OUT
    LD DE, 0x10
    OUT
    RET
""")


@pytest.mark.parametrize(("limit", "done"), [(0x30020, 3), (0x3001F, 2), (0x3000F, 1), (0xF, 0)])
def test_large_outs(engine_cfg: EngineCfg, limit: int, done: int) -> None:
    mod = load_asm(engine_cfg, BIG, mem_size=0x40000, max_output_bytes=limit)
    inst = mod.instantiate()
    inst.memory[:0x30000] = bytes(range(256)) * 0x300
    r = inst.run(fuel=FUEL)
    parts = [bytes(inst.memory[:n]) for n in (0x10, 0x30000, 0x10)]
    assert r.stdout == b"".join(parts[:done])       # the OUTs before the trapping one, whole
    if done == 3:
        assert r.ok
    else:
        outs = [i.pc for i in mod.program.instrs if i.op.mnemonic == "OUT"]
        assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == outs[done]
        assert isinstance(r.trap.cause, OutputLimitError) and r.fuel_left == FUEL - 8


def test_log_loop_of_a_large_span_traps_with_bounded_memory(engine_cfg: EngineCfg) -> None:
    """A guest LOGging a 2 MiB span in a loop (issue 13) stops at the default limit:
    31 records (2 MiB and 16 bytes each) are kept, the 32nd LOG traps, and the memory the run
    allocates stays near the limit (without it: about 2 MiB per iteration)."""
    src = export_main("""
        LD HL, 0
        LD DE, 0
        LD BC, 0x100000
        LD IX, 0x200000
    loop:
        LOG
        INC A
        CPI A, 100
        JR ltu, loop
        RET
    """)
    mod = load_asm(engine_cfg, src, mem_size=4 << 20)
    log_pc = next(i.pc for i in mod.program.instrs if i.op.mnemonic == "LOG")
    inst = mod.instantiate(log=None)
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = inst.run(fuel=FUEL)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not started:
            tracemalloc.stop()
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == log_pc
    assert isinstance(r.trap.cause, OutputLimitError) and r.reg("A") == 31 and len(r.log) == 31
    assert r.fuel_left == FUEL - 4 - 32 * 4    # the LDs, then 32 loop blocks
    kept = sum(len(t) + len(m) for t, m in r.log)
    assert kept == 31 << 21 and 32 * ((2 << 20) + LOG_RECORD_BYTES) > DEFAULT_MAX_OUTPUT_BYTES  # the 32nd does not fit
    assert kept <= peak < DEFAULT_MAX_OUTPUT_BYTES + (32 << 20), peak


# --- CTL results ----------------------------------------------------------------------

CTL = export_main("CTL\nRET")


@pytest.mark.parametrize(("value", "hl"), [
    (-1, M64), (-(1 << 63), 1 << 63), (-7, (-7) & M64),
    (-(1 << 63) - 1, M64), (-(1 << 64), M64), (-(1 << 200), M64),
    (0, M64), (5, M64), (1 << 64, M64), (True, M64), (False, M64),
    ("text", M64), (None, M64), (1.5, M64), (-1.0, M64), ([1, 2], M64), (Ellipsis, M64),
], ids=repr)
def test_ctl_handler_results(engine_cfg: EngineCfg, value: object, hl: int) -> None:
    inst = load_asm(engine_cfg, CTL, mem_size=0x10000).instantiate(ctl=lambda req: value)
    inst.memory[0x200:0x210] = b"\xaa" * 16
    r = inst.call("main", hl=0x100, de=4, bc=0x200, ix=16)
    assert r.ok and r.reg("HL") == hl
    assert bytes(inst.memory[0x200:0x210]) == b"\xaa" * 16     # nothing written
    assert (r.reg("DE"), r.reg("BC"), r.reg("IX")) == (4, 0x200, 16)


@pytest.mark.parametrize("resp", [b"", b"ok", bytearray(b"ok"), memoryview(b"ok")], ids=repr)
def test_ctl_bytes_like_responses(engine_cfg: EngineCfg, resp: bytes | bytearray | memoryview) -> None:
    inst = load_asm(engine_cfg, CTL, mem_size=0x10000).instantiate(ctl=lambda req: resp)
    r = inst.call("main", hl=0x100, de=4, bc=0x200, ix=16)
    assert r.ok and r.reg("HL") == len(resp) and bytes(inst.memory[0x200:0x200 + len(resp)]) == bytes(resp)
