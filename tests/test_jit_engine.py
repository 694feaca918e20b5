"""The native engine: runs, traps, fuel, host calls, timeouts, stack, threads, cache."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from zjit.backends import engine as compiled
from zjit.backends.engine import decode_payload, encode_payload
from zjit.backends.native import engine as native
from zjit.backends.native.engine import JitBackend

import zjit
from zjit.asm import assemble
from zjit.image import SegmentDesc
from zjit.isa import MASK64, TrapKind

pytestmark = pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")


def engine(**policy: object) -> zjit.Engine:
    policy.setdefault("use_cache", False)
    return zjit.Engine(zjit.Policy(**policy), backend="jit")  # type: ignore[arg-type]


def run(src: str, stdin: bytes | None = None, **policy: object) -> zjit.Result:
    return engine(**policy).load(assemble(src)).instantiate(stdin=stdin, log=None).run()


SUM = """
    PUBLIC main
    PUBLIC twice
main:
    LD HL, 100
    LD DE, 0
loop:
    ADD64 DE, DE, HL
    DEC HL
    CPI HL, 0
    JR ne, loop
    RET
twice:
    ADD64 HL, HL, HL
    RET
"""


@pytest.mark.parametrize("level", [0, 1, 2])
def test_loop_and_export(level: int) -> None:
    mod = engine(opt_level=level).load(assemble(SUM))
    inst = mod.instantiate()
    r = inst.run()
    assert r.ok and r.registers == {"HL": 0, "DE": 5050, "A": 0, "BC": 0, "IX": 0}
    r2 = inst.call("twice", hl=21, bc=MASK64)
    assert r2.registers["HL"] == 42 and r2.registers["BC"] == MASK64


def test_memory_persists_and_heap_top() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 24
    ALLOC
    LD64 A, (HL)
    INC A
    ST64 (HL), A
    RET
"""
    inst = engine().load(assemble(src)).instantiate()
    a = inst.run()
    b = inst.run()
    assert b.registers["HL"] == a.registers["HL"] + 24
    assert a.registers["A"] == 1 and b.registers["A"] == 1
    assert inst.heap_top == b.registers["HL"] + 24


def test_traps_report_kind_pc_registers_and_span() -> None:
    r = run("LD HL, 7\n LD DE, 0\n DIVU A, HL, DE\n RET\n")
    assert r.trap is not None and r.trap.kind is TrapKind.DIV0 and r.trap.pc == 8
    assert r.registers["HL"] == 7
    r = run("LD HL, -2\n LD16U A, (HL+1)\n RET\n", mem_size=1 << 16)
    assert r.trap is not None and r.trap.kind is TrapKind.OOB
    assert (r.trap.pc, r.trap.address, r.trap.length) == (4, MASK64, 2)
    r = run("LD HL, 0xFFF0\n LD BC, 0x20\n FILL\n RET\n", mem_size=1 << 16)
    assert r.trap is not None and (r.trap.kind, r.trap.address, r.trap.length) == (TrapKind.OOB, 0xFFF0, 0x20)


def test_write_protect() -> None:
    image = assemble("LD HL, 0x2004\n LD A, 9\n ST8 (HL), A\n RET\n")
    image = dataclasses.replace(image, segments=(SegmentDesc("ro", 0x2000, 16, "r", b"abc"),))
    for level in (0, 2):
        inst = engine(opt_level=level).load(image).instantiate()
        r = inst.run()
        assert r.trap is not None and r.trap.kind is TrapKind.WRITE_PROTECT
        assert (r.trap.address, r.trap.length, r.registers["A"]) == (0x2004, 1, 9)
        assert bytes(inst.memory[0x2000:0x2004]) == b"abc\0"


def test_call_depth_limit_is_exact() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 0
rec:
    INC HL
    CALL rec
    RET
"""
    r = run(src, max_call_depth=50)
    assert r.trap is not None and r.trap.kind is TrapKind.CALL_DEPTH
    assert r.registers["HL"] == 51


def test_deep_recursion_gets_a_big_enough_stack() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 300000
    CALL down
    RET
down:
    CPI HL, 0
    JR eq, out
    DEC HL
    CALL down
    INC DE
out:
    RET
"""
    r = run(src, max_call_depth=400_000)
    assert r.ok and r.registers["DE"] == 300000


def test_absurd_call_depth_is_refused() -> None:
    src = "PUBLIC main\nmain:\n CALL main\n RET\n"
    with pytest.raises(zjit.PolicyError) as err:
        run(src, max_call_depth=1 << 40)
    assert err.value.code == "BAD_POLICY"


def test_fuel_exact_and_variant_compiled_on_demand() -> None:
    mod = engine().load(assemble(SUM))  # policy without fuel
    inst = mod.instantiate()
    r = inst.run(fuel=5)
    assert r.trap is not None and r.trap.kind is TrapKind.FUEL and r.trap.pc == 8
    assert r.fuel_left == 3 and r.registers["HL"] == 100
    full = inst.run(fuel=10_000)
    assert full.ok and full.fuel_left == 10_000 - (2 + 4 * 100 + 1)
    assert inst.run().fuel_left is None


def test_in_out_in_memory_and_large_output() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 0x1000
    LD DE, 3
    IN
    MOV BC, HL
    LD IX, 0
again:
    LD HL, 0x1000
    MOV DE, BC
    OUT
    INC IX
    LD A, 30000
    CP IX, A
    JR ne, again
    RET
"""
    inst = engine().load(assemble(src)).instantiate(stdin=b"abcdef")
    r = inst.run()
    assert r.ok and r.registers["BC"] == 3
    assert r.stdout == b"abc" * 30000
    r = inst.run()  # input position persists: the next 3 bytes
    assert r.stdout == b"def" * 30000
    assert inst.run().stdout == b""


def test_stream_io() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 0x1000
    LD DE, 100
    IN
    MOV DE, HL
    LD HL, 0x1000
    OUT
    RET
"""
    out = io.BytesIO()
    inst = engine().load(assemble(src)).instantiate(stdin=io.BytesIO(b"hello"), stdout=out)
    r = inst.run()
    assert r.ok and out.getvalue() == b"hello" and r.stdout == b""


def test_host_exception_becomes_host_trap_with_cause() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 0x1000
    LD DE, 2
    LD BC, 0x1100
    LD IX, 16
    CTL
    RET
"""
    boom = ValueError("boom")

    def handler(req: bytes) -> bytes:
        raise boom

    inst = engine().load(assemble(src)).instantiate(ctl=handler)
    r = inst.run()
    assert r.trap is not None and r.trap.kind is TrapKind.HOST and r.trap.pc == 0x18
    assert r.trap.cause is boom and r.registers["HL"] == 0x1000
    with pytest.raises(zjit.TrapError) as err:
        inst.run(raise_on_trap=True)
    assert err.value.__cause__ is boom


def test_ctl_and_log() -> None:
    src = """
    PUBLIC main
main:
    LD HL, 0x1000
    LD DE, 2
    LD BC, 0x1100
    LD IX, 16
    CTL
    MOV A, HL
    LD HL, 0x1100
    LD DE, 2
    LD BC, 0x1000
    LD IX, 2
    LOG
    RET
"""
    image = assemble(src)
    image = dataclasses.replace(image, segments=(SegmentDesc("d", 0x1000, 2, "rw", b"hi"),))
    records: list[tuple[bytes, bytes]] = []
    inst = engine().load(image).instantiate(ctl=lambda req: req[::-1], log=lambda t, m: records.append((t, m)))
    r = inst.run()
    assert r.ok and r.registers["A"] == 2
    assert records == [(b"ih", b"hi")] and r.log == ((b"ih", b"hi"),)
    no_handler = engine().load(image).instantiate(log=None).run()
    assert no_handler.registers["A"] == (-7) & MASK64


def test_keyboard_interrupt_in_handler_propagates() -> None:
    src = "PUBLIC main\nmain:\n LD HL, 0x1000\n LD DE, 1\n OUT\n RET\n"

    class Sink(io.RawIOBase):
        def write(self, data: object) -> int:
            raise KeyboardInterrupt

    inst = engine().load(assemble(src)).instantiate(stdout=Sink())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        inst.run()


SPIN = "PUBLIC main\nmain:\nspin:\n INC HL\n JR spin\n"


def test_interrupt_from_another_thread() -> None:
    inst = engine().load(assemble(SPIN)).instantiate()
    timer = threading.Timer(0.2, inst.interrupt)
    timer.start()
    t0 = time.monotonic()
    r = inst.run()
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT and r.trap.pc == 0
    assert time.monotonic() - t0 < 5
    assert inst.run(fuel=1000).trap.kind is TrapKind.FUEL  # type: ignore[union-attr]


def test_policy_timeout() -> None:
    r = run(SPIN, timeout=0.2)
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT


def test_threads_share_one_module() -> None:
    src = """
    PUBLIC main
main:
    MOV DE, HL
    LD BC, 0
loop:
    ADD64 BC, BC, DE
    DEC HL
    CPI HL, 0
    JR ne, loop
    RET
"""
    mod = engine().load(assemble(src))
    errors: list[str] = []

    def worker(k: int) -> None:
        inst = mod.instantiate()
        for i in range(50):
            n = 1000 + k * 7 + i
            r = inst.call("main", hl=n)
            if r.registers["BC"] != n * n:
                errors.append(f"{k}/{i}: {r.registers}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_disk_cache_hit_skips_compilation(tmp_path: Path) -> None:
    image = assemble(SUM)
    pol = zjit.Policy(cache_dir=tmp_path, tier="optimized")
    first = zjit.Engine(pol, backend="jit")
    assert first.load(image).instantiate().run().registers["DE"] == 5050
    assert first.backend.compiles == 1  # type: ignore[attr-defined]
    second = zjit.Engine(pol, backend="jit")
    assert second.load(image).instantiate().run().registers["DE"] == 5050
    assert second.backend.compiles == 0  # type: ignore[attr-defined]


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = assemble(SUM)
    pol = zjit.Policy(cache_dir=tmp_path, tier="optimized")
    zjit.Engine(pol, backend="jit").load(image)
    real_get = native.JitBackend._cache

    def bad_cache(self: JitBackend, policy: zjit.Policy) -> object:
        cache = real_get(self, policy)

        class Bad:
            def get(self, key: str) -> bytes:
                return b"ZJITNAT1garbage"

            def put(self, key: str, payload: bytes) -> None:
                cache.put(key, payload)

        return Bad()

    monkeypatch.setattr(native.JitBackend, "_cache", bad_cache)
    eng = zjit.Engine(pol, backend="jit")
    assert eng.load(image).instantiate().run().registers["DE"] == 5050
    assert eng.backend.compiles == 1  # type: ignore[attr-defined]


def test_payload_round_trip_and_rejects() -> None:
    info = compiled.CodeInfo({0: "zjit_entry_0"}, 200, None)
    obj, back = decode_payload(encode_payload(b"\x7fELF...", info))
    assert obj == b"\x7fELF..." and back == info
    assert decode_payload(b"") is None
    assert decode_payload(b"ZJITNAT1\xff\xff\x00\x00{}") is None
    bad = encode_payload(b"x", info).replace(b'"frame_bound": 200', b'"frame_bound": -1')
    assert decode_payload(bad) is None


def test_close_unmaps_and_refuses_runs() -> None:
    eng = engine()
    inst = eng.load(assemble(SUM)).instantiate()
    assert inst.run().ok
    eng.backend.close()  # type: ignore[attr-defined]
    with pytest.raises(zjit.PolicyError):
        inst.run()


def test_unknown_entry_pc_rejected() -> None:
    mod = engine().load(assemble(SUM))
    inst = mod.instantiate()
    with pytest.raises(ValueError):
        mod.executable.execute(inst.machine, 4, [0] * 5)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_guest_threads_are_reused_and_end_with_their_code() -> None:
    eng = engine()
    inst = eng.load(assemble(SUM)).instantiate()
    inst.run()
    before = _threads()
    for _ in range(100):
        assert inst.run().ok
    assert _threads() == before  # one guest thread served every run
    eng.backend.close()  # type: ignore[attr-defined]
    assert _threads() == before - 1  # its idle guest thread ended before the unmap


FORK = r"""
import os, sys
import zjit
from zjit.asm import assemble
inst = zjit.Engine(zjit.Policy(use_cache=False)).load(assemble(sys.argv[1])).instantiate()
assert inst.run().registers["DE"] == 5050
pid = os.fork()
if pid == 0:  # the parent's idle guest thread does not exist here: a new one serves
    os._exit(0 if inst.run().registers["DE"] == 5050 else 3)
_, status = os.waitpid(pid, 0)
assert status == 0, status
assert inst.run().registers["DE"] == 5050
print("FORK-OK")
"""


def test_runs_after_fork() -> None:
    out = subprocess.run([sys.executable, "-c", FORK, SUM], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "FORK-OK" in out.stdout, out.stderr
