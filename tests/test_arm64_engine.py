"""The arm64 engine: AArch64 JIT code in unicorn agrees with the interpreter.

Besides the conformance suite (which runs every engine configuration), this
checks the hand-encoded runtime page (capstone, and memmove/memset against a
Python reference), the AArch64 frame measurement, a differential property over
generated programs at O0 and O2, and what is specific to the emulator: scratch
copies of odd-sized memory, emulator reuse across programs and threads, and the
outside stop behind the interrupt flag.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zjit.backends.arm64 import emulator as arm64_emu
from zjit.backends.arm64 import engine as arm64
from zjit.backends.arm64.runtime import (
    MEMMOVE_OFFSET,
    MEMSET_OFFSET,
    _sp_decrement,
    frame_bound,
    host_function_offsets,
    runtime_page,
)
from zjit.backends.objfile import elf
from zjit.fuzz.generators import long_program
from zjit.fuzz.oracles import compare_detailed
from zjit.fuzz.program import GenProgram
from zjit.fuzz.strategies import programs, trapping_programs

import zjit
from zjit.asm import assemble
from zjit.isa import TrapKind

pytestmark = pytest.mark.skipif(not arm64.Arm64Backend.available(), reason="unicorn not installed")

_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- runtime page -----------------------------------------------------------------------

def _disasm(code: bytes, at: int) -> list[str]:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    out = []
    for _addr, _size, mnem, ops in md.disasm_lite(code, at):
        if mnem == "brk":
            break
        out.append(f"{mnem} {ops}".strip())
    return out


def test_trampolines_and_helpers_decode_as_intended() -> None:
    page = runtime_page()
    offsets = host_function_offsets()
    at = offsets["host_call"]
    assert _disasm(page[at:at + 16], at) == ["svc #0", "ret", "nop", "nop"]
    move = _disasm(page[MEMMOVE_OFFSET:MEMSET_OFFSET], MEMMOVE_OFFSET)
    assert move[:4] == ["mov x3, x0", f"cbz x2, #{MEMMOVE_OFFSET + 0x70:#x}", "cmp x0, x1",
                        f"b.hi #{MEMMOVE_OFFSET + 0x3c:#x}"]
    assert "ldr x4, [x1], #8" in move and "ldr x4, [x1, #-8]!" in move and move[-1] == "ret"
    fill = _disasm(page[MEMSET_OFFSET:], MEMSET_OFFSET)
    assert fill[:4] == ["mov x3, x0", "and x4, x1, #0xff", "mov x5, #0x101010101010101", "mul x4, x4, x5"]
    assert fill[-1] == "ret"


class _Cpu:
    """A bare unicorn CPU with the runtime page and one data page."""

    DATA = 0x40_0000

    def __init__(self) -> None:
        from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, UC_PROT_ALL, Uc  # type: ignore[attr-defined]

        self.uc: Any = Uc(UC_ARCH_ARM64, UC_MODE_ARM)  # type: ignore[no-untyped-call]
        self.uc.mem_map(arm64_emu.RT_BASE, 0x1000, UC_PROT_ALL)
        self.uc.mem_write(arm64_emu.RT_BASE, runtime_page())
        self.uc.mem_map(self.DATA, 0x1000, UC_PROT_ALL)

    def call(self, offset: int, *args: int) -> int:
        from unicorn import arm64_const as a

        for i, v in enumerate(args):
            self.uc.reg_write(a.UC_ARM64_REG_X0 + i, v)
        self.uc.reg_write(a.UC_ARM64_REG_LR, arm64_emu.SENTINEL)
        self.uc.emu_start(arm64_emu.RT_BASE + offset, arm64_emu.SENTINEL, count=100_000)
        return int(self.uc.reg_read(a.UC_ARM64_REG_X0))


@pytest.fixture(scope="module")
def cpu() -> _Cpu:
    return _Cpu()


@settings(max_examples=150, deadline=None)
@given(dst=st.integers(0, 96), src=st.integers(0, 96), n=st.integers(0, 64))
def test_memmove_matches_python(cpu: _Cpu, dst: int, src: int, n: int) -> None:
    data = bytes(range(1, 161)) + bytes(96)
    cpu.uc.mem_write(cpu.DATA, data)
    assert cpu.call(MEMMOVE_OFFSET, cpu.DATA + dst, cpu.DATA + src, n) == cpu.DATA + dst
    want = bytearray(data)
    want[dst:dst + n] = data[src:src + n]
    assert bytes(cpu.uc.mem_read(cpu.DATA, len(data))) == bytes(want)


@settings(max_examples=80, deadline=None)
@given(dst=st.integers(0, 64), byte=st.integers(0, 0x1FF), n=st.integers(0, 40))
def test_memset_matches_python(cpu: _Cpu, dst: int, byte: int, n: int) -> None:
    data = bytes(range(1, 129))
    cpu.uc.mem_write(cpu.DATA, data)
    assert cpu.call(MEMSET_OFFSET, cpu.DATA + dst, byte, n) == cpu.DATA + dst
    want = bytearray(data)
    want[dst:dst + n] = bytes([byte & 0xFF]) * n
    assert bytes(cpu.uc.mem_read(cpu.DATA, len(data))) == bytes(want)


# --- frames -------------------------------------------------------------------------------

def test_sp_decrements() -> None:
    assert _sp_decrement(0xD10183FF) == 0x60          # sub sp, sp, #0x60
    assert _sp_decrement(0xD14007FF) == 0x1000        # sub sp, sp, #1, lsl #12
    assert _sp_decrement(0xA9BF7BFD) == 16            # stp x29, x30, [sp, #-16]!
    assert _sp_decrement(0x6DBE27E8) == 32            # stp d8, d9, [sp, #-32]!
    assert _sp_decrement(0xF81F0FFE) == 16            # str x30, [sp, #-16]!
    assert _sp_decrement(0xA9017BFD) == 0             # stp x29, x30, [sp, #16]
    assert _sp_decrement(0x910183FF) == 0             # add sp, sp, #0x60
    assert _sp_decrement(0xCB2963FF) is None          # sub sp, sp, x9
    code = struct.pack("<4I", 0xA9BF7BFD, 0xD10183FF, 0x910183FF, 0xD65F03C0)
    assert frame_bound(code, [(0, 16)]) == 16 + 0x60 + 64


def _capstone_frames(obj: bytes) -> int:
    """Largest per-function sum of sp decrements, read with capstone."""
    import re

    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    parsed = elf.parse_elf(obj)
    best = 0
    for sec in parsed.sections:
        for s in parsed.symbols:
            if s.shndx != sec.index or s.type != elf.STT_FUNC:
                continue
            total = 0
            for _a, _n, mnem, ops in md.disasm_lite(sec.data[s.value:s.value + s.size], 0):
                m = re.fullmatch(r"sp, sp, #(0x[0-9a-f]+|\d+)(?:, lsl #12)?", ops)
                if mnem == "sub" and m:
                    total += int(m.group(1), 0) << (12 if "lsl" in ops else 0)
                m = re.search(r"\[sp, #-(0x[0-9a-f]+|\d+)\]!$", ops)
                if mnem.startswith("st") and m:
                    total += int(m.group(1), 0)
            best = max(best, total)
    return best


@pytest.mark.parametrize("level", [0, 2])
def test_frame_measurement_agrees_with_capstone(level: int) -> None:
    from zjit.backends.listing import compile_native
    from zjit.verifier import verify

    program = verify(long_program(3, 300).image())
    obj = compile_native(program, "aarch64", zjit.Policy(opt_level=level, use_cache=False)).obj
    assert arm64.measure_frames(obj) == _capstone_frames(obj) + 64
    assert arm64.measure_frames(obj) > 64


# --- differential ---------------------------------------------------------------------------

CONFIGS = ["arm64-O0", "arm64-O2", "arm64-baseline", "arm64-auto1"]
"""Configurations of ``zjit.runtime.ENGINE_VARIANTS`` compared with the interpreter."""


def _check(program: GenProgram, config: str) -> None:
    policy = program.policy(use_cache=False)
    mismatch, runs = compare_detailed(program, ("interp", config), policy=policy)
    assert mismatch is None, mismatch.report() + "\n\n" + program.asm
    assert all(not r.crashed for r in runs), [r.error for r in runs]


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
@_SETTINGS
@given(program=programs())
def test_arm64_matches_interpreter(config: str, program: GenProgram) -> None:
    _check(program, config)


@pytest.mark.parametrize("kind", [TrapKind.OOB, TrapKind.DIV0, TrapKind.FUEL, TrapKind.CALL_DEPTH,
                                  TrapKind.WRITE_PROTECT, TrapKind.HOST])
def test_trap_programs_match(kind: TrapKind) -> None:
    @settings(max_examples=5, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(program=trapping_programs(kind))
    def inner(program: GenProgram) -> None:
        for config in CONFIGS:
            _check(program, config)

    inner()


def test_long_program_matches() -> None:
    _check(long_program(1), "arm64-baseline")


# --- emulator specifics ----------------------------------------------------------------------

ECHO = """\
        PUBLIC main
buf:    RESB 64
main:   LD HL, buf
        LD DE, 64
        IN                              ; HL = bytes read into buf
        MOV DE, HL                      ; length read
        LD HL, buf
        LD BC, 3
        LD IX, 0x41
        ST8 (HL+1), IX
        OUT                             ; what was read, with buf[1] = 'A'
        LDIR                            ; copy buf[0:3] to address DE
        RET
"""


def _both(src: str, *, runs: int = 2, **policy: Any) -> None:
    """Run ``src`` ``runs`` times on one instance per engine; Results and memory agree."""
    out = {}
    for backend in ("interp", "arm64"):
        module = zjit.Engine(zjit.Policy(use_cache=False, **policy), backend=backend).load(assemble(src, "t.s"))
        inst = module.instantiate(stdin=b"hello world", log=None)
        results = [inst.run() for _ in range(runs)]
        out[backend] = (results, bytes(inst.memory), inst.heap_top)
    assert out["arm64"] == out["interp"]


def test_odd_memory_size_runs_on_a_scratch_copy() -> None:
    _both(ECHO, mem_size=0x1_0123)
    _both(ECHO, mem_size=0x1_0000)


def test_emulators_are_reused_across_programs() -> None:
    engine = zjit.Engine(zjit.Policy(use_cache=False), backend="arm64")
    ref = zjit.Engine(zjit.Policy(use_cache=False), backend="interp")
    srcs = [f"PUBLIC main\nmain: LD HL, {k}\nADD64 HL, HL, HL\nRET\n" for k in range(1, 8)]
    made = []
    real_init = arm64_emu.Emulator.__init__

    def counting(self: arm64_emu.Emulator) -> None:
        made.append(1)
        real_init(self)

    arm64_emu.Emulator.__init__ = counting  # type: ignore[method-assign]
    try:
        for _ in range(2):
            for src in srcs:  # alternate code on the pooled emulators
                got = engine.load(assemble(src, "a.s")).instantiate().run()
                assert got == ref.load(assemble(src, "a.s")).instantiate().run()
    finally:
        arm64_emu.Emulator.__init__ = real_init  # type: ignore[method-assign]
    assert len(made) <= 1


def test_threads_run_instances_at_once() -> None:
    src = "PUBLIC main\nmain: LD BC, 20000\nloop: DEC BC\nCPI BC, 0\nJR ne, loop\nLD HL, 7\nRET\n"
    module = zjit.Engine(zjit.Policy(use_cache=False), backend="arm64").load(assemble(src, "t.s"))
    results: list[Any] = []

    def work() -> None:
        results.append(module.instantiate().run())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r.ok and r.registers["HL"] == 7 for r in results)


def test_outside_stop_when_the_code_does_not_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """A FILL of 64 MiB runs in the runtime page's memset (about half a second
    emulated), which has no interrupt poll: the CPU is stopped from outside, part
    way, and the run ends with TIMEOUT at the calling function's entry; the
    instance stays usable."""
    monkeypatch.setattr(arm64, "FORCE_STOP_AFTER", 0.01)
    src = "PUBLIC main\nmain: LD HL, 0\nLD BC, 0x4000000\nLD A, 1\nFILL\nRET\n"
    module = zjit.Engine(zjit.Policy(use_cache=False, mem_size=64 << 20), backend="arm64").load(
        assemble(src, "t.s"))
    inst = module.instantiate()
    timer = threading.Timer(0.05, inst.interrupt)
    timer.start()
    result = inst.run()
    timer.join()
    assert result.trap is not None and result.trap.kind is TrapKind.TIMEOUT
    assert result.trap.pc == module.entry
    assert inst.memory[0] == 1 and inst.memory[-1] == 0  # stopped inside the FILL
    assert inst.run().ok and inst.memory[-1] == 1


def test_keyboard_interrupt_from_a_handler_propagates() -> None:
    src = "PUBLIC main\nmsg: DB \"x\"\nmain: LD HL, msg\nLD DE, 1\nLD BC, msg\nLD IX, 0\nCTL\nRET\n"
    module = zjit.Engine(zjit.Policy(use_cache=False), backend="arm64").load(assemble(src, "t.s"))

    def ctl(_req: bytes) -> bytes:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        module.instantiate(ctl=ctl).run()
    assert module.instantiate(ctl=lambda req: b"").run().registers["HL"] == 0


def test_disk_cache_hit_skips_the_compiler(tmp_path: Any) -> None:
    src = "PUBLIC main\nmain: LD HL, 5\nCALL dbl\nRET\ndbl: ADD64 HL, HL, HL\nRET\n"
    policy = zjit.Policy(cache_dir=tmp_path, tier="optimized")
    first = zjit.Engine(policy, backend="arm64")
    assert first.load(assemble(src, "t.s")).instantiate().run().registers["HL"] == 10
    second = zjit.Engine(policy, backend="arm64")
    assert second.load(assemble(src, "t.s")).instantiate().run().registers["HL"] == 10
    assert isinstance(first.backend, arm64.Arm64Backend) and isinstance(second.backend, arm64.Arm64Backend)
    assert (first.backend.compiles, second.backend.compiles) == (1, 0)
    if "jit" not in zjit.available_backends():
        return
    jit = zjit.Engine(policy, backend="jit")  # same cache directory, its own (x86-64) entries
    assert jit.load(assemble(src, "t.s")).instantiate().run().registers["HL"] == 10
    assert getattr(jit.backend, "compiles", None) == 1
