"""The six host primitives (isa.md 2.8): spans, effects, results."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm
from model import M64

from zjit.asm import assemble
from zjit.image import ModuleImage, SegmentDesc
from zjit.instance import Instance
from zjit.isa import TrapKind

MEM = 0x10000
RO = (SegmentDesc("rodata", 0x8000, 0x100, "r", b"\x01"),)


def _prim(cfg: EngineCfg, op: str, *, segments: tuple[SegmentDesc, ...] = (), **io_args: Any) -> Instance:
    mod = load_asm(cfg, export_main(f"{op}\nRET"), segments=segments, mem_size=MEM)
    return mod.instantiate(**io_args)


# --- OUT ---------------------------------------------------------------------------

HELLO = export_main('LD HL, msg\nLD DE, 0x100000005\nOUT\nRET\nmsg: DB "hello world"')


def test_out_captured_uses_low_32_bits_of_length(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, HELLO)
    assert r.ok and r.stdout == b"hello"
    assert r.reg("HL") == 0x1000 and r.reg("DE") == 0x1_0000_0005


def test_out_to_a_stream(engine_cfg: EngineCfg) -> None:
    sink = io.BytesIO()
    r, _ = run_asm(engine_cfg, HELLO, stdout=sink)
    assert r.ok and r.stdout == b"" and sink.getvalue() == b"hello"


def test_out_captured_per_run(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, HELLO).instantiate()
    assert inst.run().stdout == b"hello"
    assert inst.run().stdout == b"hello"


def test_out_span(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "OUT")
    r = inst.call("main", hl=MEM - 2, de=3)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.pc, r.trap.address, r.trap.length) == (0, MEM - 2, 3) and r.stdout == b""
    r = inst.call("main", hl=M64, de=0x1_0000_0000)    # length 0 always passes
    assert r.ok and r.stdout == b""
    assert inst.call("main", hl=0x8000, de=1, ).stdout == b"\x00"


def test_out_from_read_only_memory(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "OUT", segments=RO)
    assert inst.call("main", hl=0x8000, de=2).stdout == b"\x01\x00"


# --- IN ----------------------------------------------------------------------------

@pytest.mark.parametrize("as_stream", [False, True])
def test_in_reads_up_to_cap(engine_cfg: EngineCfg, as_stream: bool) -> None:
    data = b"hello"
    inst = _prim(engine_cfg, "IN", stdin=io.BytesIO(data) if as_stream else data)
    got = b""
    for _ in range(6):
        r = inst.call("main", hl=0x400, de=0x1_0000_0004)   # cap is the low 32 bits: 4
        assert r.ok
        n = r.reg("HL")
        assert 0 <= n <= 4
        got += bytes(inst.memory[0x400:0x400 + n])
        if n == 0:
            break
    assert got == data
    assert inst.call("main", hl=0x400, de=4).reg("HL") == 0   # end of input


def test_in_from_bytes_is_min_of_cap_and_remaining(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "IN", stdin=b"abcdef")
    assert inst.call("main", hl=0x400, de=4).reg("HL") == 4
    assert inst.call("main", hl=0x400, de=4).reg("HL") == 2
    assert bytes(inst.memory[0x400:0x404]) == b"efcd"


def test_in_span_is_checked_as_a_write_before_reading(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "IN", segments=RO, stdin=b"xyz")
    r = inst.call("main", hl=0x80FE, de=4)
    assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT
    assert (r.trap.address, r.trap.length) == (0x80FE, 4) and r.reg("HL") == 0x80FE
    r = inst.call("main", hl=MEM - 1, de=2)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    ok = inst.call("main", hl=0x400, de=3)     # nothing was consumed by the traps
    assert ok.reg("HL") == 3 and bytes(inst.memory[0x400:0x403]) == b"xyz"
    assert inst.call("main", hl=M64, de=0).reg("HL") == 0   # cap 0: no check, reads nothing


# --- LOG ---------------------------------------------------------------------------

LOG = export_main('LD HL, topic\nLD DE, 3\nLD BC, msg\nLD IX, 5\nLOG\nRET\ntopic: DB "net"\nmsg: DB "hello"')


def test_log_records_and_callable_sink(engine_cfg: EngineCfg) -> None:
    seen: list[tuple[bytes, bytes]] = []
    r, _ = run_asm(engine_cfg, LOG, log=lambda t, m: seen.append((t, m)))
    assert r.ok and r.log == ((b"net", b"hello"),) and seen == [(b"net", b"hello")]


def test_log_to_stream_and_default_stderr(engine_cfg: EngineCfg, capsys: pytest.CaptureFixture[str]) -> None:
    sink = io.BytesIO()
    r, _ = run_asm(engine_cfg, LOG, log=sink)
    assert sink.getvalue() == b"[net] hello\n" and r.log == ((b"net", b"hello"),)
    inst = load_asm(engine_cfg, LOG).instantiate()     # default sink: stderr
    assert inst.run().log == ((b"net", b"hello"),)
    assert "[net] hello\n" in capsys.readouterr().err


def test_log_spans_topic_then_message(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "LOG", log=None)
    r = inst.call("main", hl=MEM, de=1, bc=MEM, ix=1)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.address, r.trap.length) == (MEM, 1)
    r = inst.call("main", hl=0, de=1, bc=MEM - 1, ix=0x1_0000_0002)
    assert r.trap is not None and (r.trap.address, r.trap.length) == (MEM - 1, 2)
    assert r.log == ()
    assert inst.call("main", hl=M64, de=0, bc=M64, ix=0).log == ((b"", b""),)


# --- ALLOC and FREE ----------------------------------------------------------------

ALLOC = export_main("ALLOC\nRET\nbuf: DB 1, 2, 3, 4, 5")   # data 0x1000..0x1005


def test_alloc_starts_after_data_and_aligns(engine_cfg: EngineCfg) -> None:
    inst = load_asm(engine_cfg, ALLOC, mem_size=MEM).instantiate()
    assert inst.call("main", hl=3).reg("HL") == 0x1008
    assert inst.call("main", hl=1).reg("HL") == 0x1010    # align8(0x100B)
    assert inst.call("main", hl=0).reg("HL") == 0         # size 0
    assert inst.call("main", hl=M64).reg("HL") == 0       # out of memory, no trap
    assert inst.call("main", hl=MEM - 0x1018).reg("HL") == 0x1018   # exactly fills memory
    assert inst.call("main", hl=1).reg("HL") == 0
    again = load_asm(engine_cfg, ALLOC, mem_size=MEM).instantiate()  # new instance: new heap
    assert again.call("main", hl=8).reg("HL") == 0x1008


def test_alloc_without_data_starts_at_16(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "ALLOC")
    assert inst.call("main", hl=1).reg("HL") == 16
    assert inst.call("main", hl=1).reg("HL") == 24


def test_alloc_after_the_highest_segment(engine_cfg: EngineCfg) -> None:
    segs = (SegmentDesc("bss", 0x3000, 0x101, "rw"), SegmentDesc("ro", 0x2000, 0x10, "r", b"x"))
    inst = _prim(engine_cfg, "ALLOC", segments=segs)
    assert inst.call("main", hl=4).reg("HL") == 0x3108


def test_free_has_no_effect(engine_cfg: EngineCfg) -> None:
    r, mem = run_asm(engine_cfg, export_main("FREE\nRET"), registers={"hl": 0x1234, "de": 5})
    assert r.ok and r.reg("HL") == 0x1234 and mem == bytes(len(mem))


# --- CTL ---------------------------------------------------------------------------

def test_ctl_without_handler_returns_minus_7(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "CTL")
    r = inst.call("main", hl=0x100, de=4, bc=0x200, ix=16)
    assert r.ok and r.reg("HL") == (-7) & M64
    r = inst.call("main", hl=0x100, de=4, bc=MEM - 8, ix=16)   # spans checked even so
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.address, r.trap.length) == (MEM - 8, 16)


def test_ctl_handler_roundtrip(engine_cfg: EngineCfg) -> None:
    requests: list[bytes] = []

    def handler(req: bytes) -> bytes:
        requests.append(req)
        return req.upper() + b"!"

    inst = _prim(engine_cfg, "CTL", ctl=handler)
    inst.memory[0x100:0x104] = b"ping"
    r = inst.call("main", hl=0x100, de=0x1_0000_0004, bc=0x200, ix=5)
    assert r.ok and r.reg("HL") == 5 and requests == [b"ping"]
    assert bytes(inst.memory[0x200:0x206]) == b"PING!\x00"
    assert (r.reg("DE"), r.reg("BC"), r.reg("IX")) == (0x1_0000_0004, 0x200, 5)


def test_ctl_response_too_long_and_negative_results(engine_cfg: EngineCfg) -> None:
    inst = _prim(engine_cfg, "CTL", ctl=lambda req: b"123456")
    r = inst.call("main", hl=0x100, de=0, bc=0x200, ix=5)
    assert r.ok and r.reg("HL") == M64 and bytes(inst.memory[0x200:0x206]) == bytes(6)
    neg = _prim(engine_cfg, "CTL", ctl=lambda req: -42)
    assert neg.call("main", hl=0, de=0, bc=0, ix=0).reg("HL") == (-42) & M64


def test_ctl_response_span_is_a_write(engine_cfg: EngineCfg) -> None:
    calls: list[bytes] = []

    def handler(req: bytes) -> bytes:
        calls.append(req)
        return b""

    inst = _prim(engine_cfg, "CTL", segments=RO, ctl=handler)
    r = inst.call("main", hl=0x100, de=1, bc=0x80F0, ix=0x20)
    assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT
    assert (r.trap.address, r.trap.length) == (0x80F0, 0x20) and calls == []
    r = inst.call("main", hl=MEM, de=1, bc=0x80F0, ix=0x20)   # request span first
    assert r.trap is not None and r.trap.kind is TrapKind.OOB and r.trap.address == MEM


def _segments_example() -> ModuleImage:
    from zjit.container.detect import load_image
    return load_image(Path(__file__).resolve().parents[2] / "examples" / "segments" / "module.json")


def test_segments_example_runs(engine_cfg: EngineCfg) -> None:
    r, mem = run_asm(engine_cfg, _segments_example())
    assert r.ok and r.reg("HL") == 42
    assert mem[0x2008:0x2010] == (42).to_bytes(8, "little") == mem[0x3000:0x3008]


def test_alloc_after_module_json_segments(engine_cfg: EngineCfg) -> None:
    # rodata [0x1000, 0x1100), data [0x2000, 0x2040), bss [0x3000, 0x4000): heap at 0x4000
    text = "ALLOC\nMOV DE, HL\nLD A, 0x77\nST8 (DE), A\nLD HL, 0x1004\nST8 (HL), A\nRET"
    code = assemble(text, "alloc.s").code
    image = dataclasses.replace(_segments_example(), code=code, imports=None, debug={})
    r, mem = run_asm(engine_cfg, image, registers={"hl": 5})
    assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT    # rodata is read-only
    assert r.trap.pc == 24 and r.reg("DE") == 0x4000 and mem[0x4000] == 0x77
    inst = load_asm(engine_cfg, image).instantiate()
    assert inst.call("main", hl=5).trap is not None and inst.heap_top == 0x4005
