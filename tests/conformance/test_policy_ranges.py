"""Policy ranges (interfaces.md): every engine honours every in-range value exactly,
and a value outside its range is refused with BAD_POLICY before any engine sees it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from engine_harness import EngineCfg, export_main, load_asm, run_asm

from zjit.errors import PolicyError
from zjit.isa import TrapKind
from zjit.policy import CALL_DEPTH_MAX, FUEL_MAX, TIMEOUT_MAX, Policy

# Five instructions: LD, CALL, INC, RET, RET.
FIVE = export_main("LD HL, 5\nCALL f\nRET\nf:\nINC HL\nRET")

# The k-th activation of f runs with k return pcs on the stack; the CALL is not a
# tail call (INC BC follows it), so every level keeps a native frame.
RECURSE = """
PUBLIC main
main:
    CALL f
    RET
f:
    INC HL
    CP HL, DE
    JR geu, done
    CALL f
    INC BC
done:
    RET
"""


def _big_frames(blocks: int) -> str:
    """A recursive function of ``blocks`` blocks: large frames where nothing is
    optimised (about 50 bytes a block at opt level 0)."""
    body = "\n".join(f"    ADD64 A, A, BC\n    ST8 (IX+{i % 200}), A\n    LD8U BC, (IX+{i * 7 % 200})\n"
                     f"    CPI A, {i}\n    JR eq, s{i}\n    INC DE\ns{i}:" for i in range(blocks))
    return f"PUBLIC main\nmain:\n    LD IX, 0x1000\n    CALL f\n    RET\nf:\n{body}\n" \
           "    INC HL\n    CPI HL, 3\n    JR geu, done\n    CALL f\n    INC BC\ndone:\n    RET\n"


BAD: list[tuple[str, Any]] = [
    ("fuel", -1), ("fuel", FUEL_MAX + 1), ("fuel", 1 << 64 << 64), ("fuel", True), ("fuel", 1.0), ("fuel", "10"),
    ("max_call_depth", -1), ("max_call_depth", CALL_DEPTH_MAX + 1), ("max_call_depth", 1 << 64),
    ("max_call_depth", None), ("max_call_depth", 1.5), ("max_call_depth", False),
    ("mem_size", 0), ("mem_size", -4096), ("mem_size", (1 << 40) + 1), ("mem_size", 1 << 64), ("mem_size", 4096.0),
    ("max_mem_size", 0), ("max_mem_size", (1 << 40) + 1), ("max_mem_size", None),
    ("opt_level", -1), ("opt_level", 3), ("opt_level", True), ("opt_level", 2.0),
    ("timeout", 0), ("timeout", -1.0), ("timeout", float("nan")), ("timeout", float("inf")),
    ("timeout", TIMEOUT_MAX * 2), ("timeout", 1e300), ("timeout", True), ("timeout", "1"),
    ("cache_dir", 5), ("cache_dir", b"/tmp"), ("use_cache", 1), ("use_cache", None),
    ("cache_max_bytes", -1), ("cache_max_bytes", 1 << 63), ("cache_max_bytes", 1.0),
    ("max_code_bytes", -1), ("max_code_bytes", (1 << 32) + 1), ("max_data_bytes", -1),
    ("max_data_bytes", (1 << 40) + 1), ("allowed_prims", -1), ("allowed_prims", 64), ("allowed_prims", True),
    ("max_output_bytes", -1), ("max_output_bytes", 1 << 63), ("max_output_bytes", None),
    ("max_output_bytes", 1.0), ("max_output_bytes", True),
    ("extra", None),
]

EDGES: list[tuple[str, Any]] = [
    ("fuel", 0), ("fuel", FUEL_MAX), ("fuel", None), ("max_call_depth", 0), ("max_call_depth", CALL_DEPTH_MAX),
    ("mem_size", 1), ("mem_size", 1 << 40), ("max_mem_size", 1), ("max_mem_size", 1 << 40), ("opt_level", 0),
    ("timeout", 1e-9), ("timeout", TIMEOUT_MAX), ("timeout", 3), ("cache_max_bytes", 0),
    ("cache_max_bytes", (1 << 63) - 1), ("max_code_bytes", 0), ("max_code_bytes", 1 << 32),
    ("max_data_bytes", 1 << 40), ("allowed_prims", 0), ("allowed_prims", 63), ("cache_dir", "relative"),
    ("max_output_bytes", 0), ("max_output_bytes", (1 << 63) - 1),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_out_of_range_is_refused_when_the_policy_is_made(field: str, value: Any) -> None:
    with pytest.raises(PolicyError) as err:
        Policy(**{field: value})
    assert err.value.code == "BAD_POLICY" and err.value.path == f"Policy.{field}"


@pytest.mark.parametrize(("field", "value"), EDGES, ids=[f"{f}={v!r}" for f, v in EDGES])
def test_range_ends_are_accepted(field: str, value: Any) -> None:
    assert getattr(Policy(**{field: value}), field) == value


def test_fuel_at_the_top_of_the_range(engine_cfg: EngineCfg) -> None:
    r, _ = run_asm(engine_cfg, FIVE, fuel=FUEL_MAX)
    assert r.ok and r.fuel_left == FUEL_MAX - 5 and r.reg("HL") == 6
    inst = load_asm(engine_cfg, FIVE, fuel=FUEL_MAX).instantiate()
    assert inst.run().fuel_left == FUEL_MAX - 5
    assert inst.run(fuel=6).fuel_left == 1 and inst.run(fuel=4).trap is not None


@pytest.mark.parametrize("fuel", [FUEL_MAX + 1, -1, True, 2.0])
def test_run_fuel_out_of_range_is_refused(engine_cfg: EngineCfg, fuel: Any) -> None:
    inst = load_asm(engine_cfg, FIVE).instantiate()
    with pytest.raises(PolicyError) as err:
        inst.run(fuel=fuel)
    assert err.value.code == "BAD_POLICY" and err.value.path == "run(fuel=)"
    with pytest.raises(PolicyError):
        inst.call("main", fuel=fuel)
    assert inst.run(fuel=5).ok  # the instance is still usable


def test_longest_timeout_runs_normally(engine_cfg: EngineCfg, monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    r, _ = run_asm(engine_cfg, FIVE, timeout=TIMEOUT_MAX)
    assert r.ok and r.reg("HL") == 6
    assert errors == []  # no timer thread failed


@pytest.mark.slow
def test_deepest_call_depth_runs(engine_cfg: EngineCfg) -> None:
    """2**20 nested guest calls run (a native frame each on the compiling engines),
    and one more traps CALL_DEPTH."""
    ok, _ = run_asm(engine_cfg, RECURSE, registers={"de": CALL_DEPTH_MAX}, max_call_depth=CALL_DEPTH_MAX)
    assert ok.ok and ok.reg("HL") == CALL_DEPTH_MAX and ok.reg("BC") == CALL_DEPTH_MAX - 1
    r, _ = run_asm(engine_cfg, RECURSE, registers={"de": CALL_DEPTH_MAX + 1}, max_call_depth=CALL_DEPTH_MAX)
    assert r.trap is not None and r.trap.kind is TrapKind.CALL_DEPTH and r.reg("HL") == CALL_DEPTH_MAX


@pytest.mark.slow
def test_deepest_call_depth_with_large_frames_is_not_refused(engine_cfg: EngineCfg) -> None:
    """A recursive function whose frames are large (about 10 KB at opt level 0, so
    2**20 of them need more than the 8 GiB the engines used to allow) still runs
    under the largest max_call_depth; reserving that stack may only fail for want
    of address space (MemoryError), never as a policy error."""
    try:
        r, _ = run_asm(engine_cfg, _big_frames(200), max_call_depth=CALL_DEPTH_MAX)
    except MemoryError as exc:
        pytest.skip(f"this machine cannot reserve the stack: {exc}")
    assert r.ok and r.reg("HL") == 3 and r.reg("BC") == 2
