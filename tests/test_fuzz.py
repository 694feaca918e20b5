"""Differential fuzzing: generators, oracle, campaign, reproducers."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from zjit.fuzz import reproducer
from zjit.fuzz.campaign import replay, run_campaign
from zjit.fuzz.choosers import RandomChooser
from zjit.fuzz.fakes import FakeEngine, register_fakes
from zjit.fuzz.generators import TRAP_KINDS, GenConfig, long_program, random_program, trap_program
from zjit.fuzz.oracles import (
    ENGINE_FACTORIES,
    compare_engines,
    diff_memory,
    diff_results,
    plan_for,
    run_engine,
)
from zjit.fuzz.program import GenProgram
from zjit.fuzz.strategies import programs, trapping_programs
from zjit.verifier import verify

import zjit
from zjit.cli import main as cli_main
from zjit.isa import OPS, Family, TrapKind
from zjit.result import Frame, Result, Trap

register_fakes()
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_interp(p: GenProgram) -> zjit.Result:
    inst = zjit.Engine(p.policy(), backend="interp").load(p.image()).instantiate(
        stdin=p.stdin, log=None, ctl=p.ctl_handler())
    return inst.run()


# --- generators ------------------------------------------------------------------
@FAST
@given(programs())
def test_generated_programs_assemble_and_verify(p: GenProgram) -> None:
    program = verify(p.image(), p.policy())
    assert program.instrs
    assert p.min_cost <= p.max_cost


def test_plain_generator_is_seed_deterministic() -> None:
    assert random_program(7) == random_program(7)
    assert random_program(7).asm != random_program(8).asm


def test_every_opcode_is_generated() -> None:
    seen: set[str] = set()
    for seed in range(60):
        for instr in verify(random_program(seed).image()).instrs:
            seen.add(instr.op.mnemonic)
    assert seen == {o.mnemonic for o in OPS}


def test_trap_free_programs_end_normally_and_cost_what_was_predicted() -> None:
    checked = 0
    for seed in range(70):
        p = random_program(seed)
        if p.intent != "random" or p.max_call_depth < p.call_depth_need:
            continue
        r = run_interp(dataclasses.replace(p, fuel=10**9, max_output_bytes=None))  # no FUEL, no output limit
        assert r.ok, (seed, r.trap)
        used = 10**9 - (r.fuel_left or 0)
        assert p.min_cost <= used <= p.max_cost, seed
        checked += 1
    assert checked > 25


@pytest.mark.parametrize("kind", TRAP_KINDS, ids=lambda k: k.name)
def test_every_trap_kind_is_reached_deterministically(kind: TrapKind) -> None:
    @settings(max_examples=12, deadline=None)
    @given(trapping_programs(kind))
    def check(p: GenProgram) -> None:
        r = run_interp(p)
        assert r.trap is not None and r.trap.kind is kind, (r.trap, p.asm)

    check()
    for seed in range(10):  # the plain-random path too
        r = run_interp(trap_program(RandomChooser(seed), kind))
        assert r.trap is not None and r.trap.kind is kind


@pytest.mark.slow
def test_campaign_programs_reach_all_trap_kinds_and_normal_ends() -> None:
    seen: Counter[str] = Counter()
    for seed in range(80):
        r = run_interp(random_program(seed))
        seen[r.trap.kind.name if r.trap else "ok"] += 1
    assert {k.name for k in TRAP_KINDS} | {"ok"} <= set(seen)
    assert seen["ok"] > 80 // 3


def test_small_output_limits_are_generated_and_engines_agree_on_them() -> None:
    """About one random program in OUTPUT_LIMIT_RATE runs under a small
    max_output_bytes (issue 13); where it makes the program trap, every engine
    traps alike (the oracle compares whole Results and memory)."""
    from zjit.machine import OutputLimitError

    limited = trapped = 0
    engines = [n for n in ("interp", "jit-baseline", "jit-O2") if n.split("-")[0] in zjit.available_backends()]
    for seed in range(300):
        p = random_program(seed)
        if p.max_output_bytes is None:
            continue
        limited += 1
        r = run_interp(p)
        if r.trap is not None and isinstance(r.trap.cause, OutputLimitError):
            trapped += 1
            mismatch = compare_engines(p, engines)
            assert mismatch is None, mismatch.report()
    assert limited >= 20 and trapped >= 4, (limited, trapped)


def test_long_program_size() -> None:
    p = long_program(1, 1000)
    n = len(verify(p.image()).instrs)
    assert 1000 <= n <= 1400
    assert run_interp(p).ok


@pytest.mark.parametrize("size", [1300, 10_000])
def test_long_programs_are_valid_past_the_branch_range(size: int) -> None:
    """Past 2 x CHUNK_INSTRUCTIONS main is built in chunks with their own helper
    functions: every CALL and JR stays within 2,047 words, the program verifies,
    calls its helpers and ends normally (10,000 instructions did not even finish
    generating before, and would not have assembled)."""
    p = long_program(2, size)
    program = verify(p.image())
    assert size <= len(program.instrs) <= size * 1.2
    assert len(program.functions) > 3
    assert run_interp(p).ok


# --- oracle ------------------------------------------------------------------------
def test_same_engine_twice_agrees() -> None:
    for seed in range(25):
        assert compare_engines(random_program(seed), ("interp", "interp")) is None


@pytest.mark.parametrize("kind,needle", [
    ("reg", "register HL"), ("mem", "memory:"), ("fuel", "fuel_left"),
    ("trap", "trap: "), ("out", "stdout"), ("always", "register BC"),
])
def test_oracle_catches_a_broken_engine(kind: str, needle: str) -> None:
    found = None
    for seed in range(300):
        m = compare_engines(random_program(seed), ("interp", f"broken-{kind}"))
        if m is not None:
            found = m
            break
    assert found is not None, f"broken-{kind} never caught"
    assert any(needle in d for d in found.differences), found.differences
    assert f"broken-{kind}" in found.report()


def test_oracle_accepts_text_and_overrides() -> None:
    text = "main:\n    LD HL, 5\n    IN\n    RET\n"
    assert compare_engines(text, ("interp", "interp"), stdin=b"abc") is None
    m = compare_engines(text, ("interp", "broken-always"), policy=zjit.Policy(fuel=10))
    assert m is not None and any("register BC" in d for d in m.differences)


class _Crashing(FakeEngine):
    def load(self, src: Any) -> Any:
        raise RuntimeError("backend exploded")


def test_oracle_reports_an_engine_crash() -> None:
    ENGINE_FACTORIES["crashing"] = lambda policy: _Crashing(policy, lambda r, m: r)
    try:
        m = compare_engines(random_program(3), ("interp", "crashing"))
        assert m is not None
        assert any("RuntimeError: backend exploded" in d for d in m.differences)
        assert run_engine("crashing", random_program(3)).crashed
    finally:
        del ENGINE_FACTORIES["crashing"]


def test_plan_runs_entry_twice_then_other_exports() -> None:
    p = GenProgram(asm="    PUBLIC main\n    PUBLIC g\nmain:\n    RET\ng:\n    RET\n")
    steps = plan_for(p.image())
    assert [s.export for s in steps] == [None, None, "g"]


def test_memory_diff_is_readable() -> None:
    a = bytes(64)
    b = bytearray(a)
    b[10] = 1
    b[11] = 2
    b[40] = 9
    lines = diff_memory(a, bytes(b), "x", "y")
    assert lines[0].startswith("memory: 2 differing range(s), 3 bytes")
    assert "[0xa, 0xc): x=0000 y=0102" in lines[1]
    assert diff_memory(a, a, "x", "y") == []


def test_results_differing_only_in_log_are_reported() -> None:
    regs = {n: 0 for n in ("HL", "DE", "A", "BC", "IX")}
    a = Result(None, regs, None, b"", ((b"t", b"m"),))
    b = Result(None, regs, None, b"", ())
    from zjit.fuzz.oracles import diff_results

    assert diff_results(a, b, "x", "y")[0].startswith("log: 1 vs 0 records")


# --- campaign and reproducers ---------------------------------------------------------
@pytest.mark.slow
def test_campaign_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    one = run_campaign(seconds=2.0, seed=42, engines=("interp", "interp"), out_dir=tmp_path, progress=None)
    assert 1.9 < one.elapsed < 4.0 and one.programs >= 10
    two = run_campaign(count=12, seed=42, engines=("interp", "interp"), out_dir=tmp_path, progress=None)
    assert two.history == one.history[:12]
    assert not one.failed and not list(tmp_path.iterdir())
    other = run_campaign(count=5, seed=43, engines=("interp",), out_dir=None, progress=None)
    assert other.history != one.history[:5]


def test_campaign_saves_reproducers_that_replay(tmp_path: Path) -> None:
    stats = run_campaign(count=40, seed=5, engines=("interp", "broken-reg"), out_dir=tmp_path,
                         progress=None, shrink_seconds=1.0, max_failures=2)
    assert stats.mismatches == 2 and stats.failed
    assert len(stats.failures) == 2
    assert any(p.with_name(p.stem + ".orig.s").exists() for p in stats.failures)
    for path in stats.failures:
        text = path.read_text()
        assert text.startswith("; zjit fuzz reproducer: engines disagree: interp vs broken-reg")
        assert "register HL" in text
        assert path.with_suffix(".json").exists()
        program, mismatch = replay(path, ("interp", "broken-reg"))
        assert mismatch is not None
        _, agree = replay(path, ("interp", "interp"))
        assert agree is None
        orig = path.with_name(path.stem + ".orig.s")
        if orig.exists():
            assert program.instruction_count() < reproducer.load_reproducer(orig).instruction_count()


def test_reproducer_header_round_trips() -> None:
    p = trap_program(RandomChooser(1), TrapKind.WRITE_PROTECT)
    p = dataclasses.replace(p, fuel=77, stdin=b"\x00hi", ctl="echo", max_output_bytes=9)
    text = reproducer.render(p, "t", [], (), ["a difference"])
    q = reproducer.parse(text)
    assert (q.fuel, q.max_call_depth, q.mem_size, q.stdin, q.ctl, q.ro_segments, q.max_output_bytes) == (
        p.fuel, p.max_call_depth, p.mem_size, p.stdin, p.ctl, p.ro_segments, 9)
    assert reproducer.parse(reproducer.render(dataclasses.replace(p, max_output_bytes=None), "t", [], (),
                                              [])).max_output_bytes is None
    rq, rp = run_interp(q), run_interp(p)
    assert rq.trap is not None and rp.trap is not None
    assert (rq.trap.kind, rq.trap.pc, rq.trap.address, rq.registers) == (
        rp.trap.kind, rp.trap.pc, rp.trap.address, rp.registers)
    with pytest.raises(reproducer.ReproducerError):
        reproducer.parse(";! fuel: lots\n")


def test_cli_fuzz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fails"
    assert cli_main(["fuzz", "--count", "5", "--seed", "1", "--engines", "interp,interp",
                     "--out", str(out), "--quiet"]) == 0
    assert "programs 5" in capsys.readouterr().err
    assert cli_main(["fuzz", "--count", "30", "--seed", "1", "--engines", "interp,broken-always",
                     "--out", str(out), "--shrink-seconds", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "FAILED (repeat with --seed 1)" in err
    saved = sorted(out.glob("fail-1-*.s"))
    assert saved
    assert cli_main(["fuzz", "--replay", str(saved[0]), "--engines", "interp,broken-always"]) == 1
    assert "register BC" in capsys.readouterr().out
    assert cli_main(["fuzz", "--engines", "interp,nope", "--count", "1"]) == 2
    assert cli_main(["fuzz", "--replay", str(tmp_path / "missing.s"), "--engines", "interp"]) == 3
    assert f"{tmp_path / 'missing.s'}: BAD_PATH: cannot read" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli_main(["fuzz", "--count", "1", "--engines", "interp", "--out", str(tmp_path / "file")]) == 2
    bad = tmp_path / "bad.s"
    bad.write_text("main: FROB HL\n")
    assert cli_main(["fuzz", "--replay", str(bad), "--engines", "interp"]) == 3
    assert f"{bad}:1: ASM_SYNTAX: unknown mnemonic or directive 'FROB'" in capsys.readouterr().err
    bad.write_text(";! fuel: lots\nRET\n")
    assert cli_main(["fuzz", "--replay", str(bad), "--engines", "interp"]) == 3
    assert f"{bad}: ASM_SYNTAX: reproducer header" in capsys.readouterr().err
    bad.write_bytes(b"RET\n\xff\n")
    assert cli_main(["fuzz", "--replay", str(bad), "--engines", "interp"]) == 3
    assert "ASM_SYNTAX: reproducer is not UTF-8" in capsys.readouterr().err


def test_generator_config_limits_size() -> None:
    cfg = GenConfig(max_stmts=2, max_funcs=0, max_depth=0, trap_rate=0.0)
    for seed in range(20):
        p = random_program(seed, cfg)
        assert p.instruction_count() < 60


# --- a real miscompilation is found -------------------------------------------------
def _wrong_les(fe: Any, ins: Any) -> None:
    """LES lowered as LTS: a plausible off-by-equality bug in the JIT."""
    w = ins.op.width
    a, b = (fe.lo32(x) for x in ins.args) if w == 32 else (fe.val(x) for x in ins.args)
    c = fe.tmp("c")
    fe.emit(f"{c} = icmp slt i{w} {a}, {b}")
    fe.emit(f"{fe.dest(ins.dests[0])} = zext i1 {c} to i64")


@pytest.mark.skipif("jit" not in zjit.available_backends(), reason="needs the jit backend")
def test_campaign_finds_a_seeded_jit_miscompilation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = pytest.importorskip("zjit.backends.llvm.module")
    key = (Family.CMPSET, "les")
    if key not in getattr(module, "EMITTERS", {}):
        pytest.skip("JIT lowering table changed shape")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # never reuse correct code
    monkeypatch.setitem(module.EMITTERS, key, _wrong_les)
    # O2 compiles are jobs of the compile workers: run them here, where the lowering is patched
    from zjit.backends.objfile.compiler import CompilerPool
    from zjit.backends.tiering import job

    monkeypatch.setattr(CompilerPool, "run_job", lambda self, name, payload, timeout=None: job.run_job(payload))
    # Seeds 1..12 all found it, after 8 to 196 programs; seed 3 is the quickest.
    stats = run_campaign(count=400, seed=3, engines=("interp", "jit-O0"), out_dir=tmp_path / "out",
                         progress=None, shrink_seconds=0, max_failures=1)
    assert stats.mismatches == 1, stats.line()
    assert "register" in stats.failures[0].read_text()


def test_oracle_compares_backtraces() -> None:
    regs = dict.fromkeys(("HL", "DE", "A", "BC", "IX"), 0)

    def res(bt: tuple[Frame, ...] | None, omitted: int = 0) -> Result:
        return Result(Trap(TrapKind.DIV0, 0x10, backtrace=bt, omitted=omitted), regs, None)

    a = res((Frame(4), Frame(0)))
    assert diff_results(a, res((Frame(4), Frame(0))), "interp", "jit") == []
    assert diff_results(a, res(None), "interp", "jit") == ["backtrace: interp=['0x4', '0x0'] (+0 omitted) "
                                                          "jit=not recorded"]
    assert diff_results(a, res((Frame(8), Frame(0))), "interp", "jit")[0].startswith("backtrace: interp=['0x4', '0x0']")
    assert diff_results(a, res((Frame(4), Frame(0)), 3), "interp", "jit")
