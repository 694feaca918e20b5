"""Trap.backtrace: the guest call stack at a trap, innermost first (the pcs of
the active CALLs), recorded and the same on every engine and tier (docs/api.md,
"Backtraces"): depth 0, 1 and several, recursion with the 32 + 32 cap, after
tail jumps into other functions, for every trap kind, and in functions that
always trap (LLVM knows they never return: an entry body jumps into them, and
on AArch64 they keep their return address in the link register alone).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_harness import EngineCfg, image_of, load_asm

from zjit.image import SegmentDesc
from zjit.isa import TrapKind
from zjit.result import BACKTRACE_KEEP, Result

# IX selects the trap at the bottom of the chain; BC the number of nested calls
# of `down` before it (recursion); `main` jumps (JR, no call) into `f1`.
CHAIN = (Path(__file__).parent.parent / "data" / "backtrace_chain.s").read_text()

RO = (SegmentDesc("ro", 0x8000, 16, "r", b"read-only"),)
KINDS = {1: TrapKind.OOB, 2: TrapKind.DIV0, 3: TrapKind.CALL_DEPTH, 4: TrapKind.WRITE_PROTECT,
         5: TrapKind.HOST, 6: TrapKind.FUEL}


def _labels() -> dict[str, int]:
    """Label -> pc of the instruction on its line (from the debug lines)."""
    pc_of_line = {d.line: pc for pc, d in image_of(CHAIN).debug.items()}
    out = {}
    for n, text in enumerate(CHAIN.splitlines(), start=1):
        if ":" in text and n in pc_of_line:
            out[text.split(":")[0].strip()] = pc_of_line[n]
    return out


def _run(cfg: EngineCfg, call: str, ix: int, bc: int = 0, depth: int = 64) -> Result:
    def ctl(request: bytes) -> bytes:
        raise RuntimeError("no control here")

    fuel = 10_000 if ix == 6 else None
    module = load_asm(cfg, CHAIN, segments=RO, max_call_depth=depth, fuel=fuel)
    inst = module.instantiate(ctl=ctl, log=None)
    return inst.call(call, ix=ix, bc=bc, a=0)


def _check(cfg: EngineCfg, result: Result, kind: TrapKind, expected: list[int], omitted: int = 0) -> None:
    trap = result.trap
    assert trap is not None and trap.kind is kind, result
    assert trap.backtrace is not None, f"{cfg.id} must record backtraces"
    assert [f.pc for f in trap.backtrace] == expected
    assert trap.omitted == omitted
    assert trap.depth == len(expected) + omitted


def _calls(*names: str) -> list[int]:
    """The pc of the CALL right at each label (innermost first)."""
    lab = _labels()
    return [lab[n] for n in names]


def _main_chain() -> list[int]:
    lab = _labels()
    return [lab["g3"], lab["f2"] + 4, lab["f1"]]  # g3's CALL, f2's CALL (after LD), f1's CALL


@pytest.mark.parametrize("ix", sorted(KINDS))
def test_every_trap_kind_after_calls_and_tail_jumps(engine_cfg: EngineCfg, ix: int) -> None:
    result = _run(engine_cfg, "main", ix, depth=8)
    expected = _main_chain()
    if ix == 3:  # t_depth recurses until the CALL that would go past the limit
        expected = [_labels()["t_depth"]] * (8 - 3) + expected
    _check(engine_cfg, result, KINDS[ix], expected)


@pytest.mark.parametrize("ix", [1, 2, 5])
def test_depth_zero(engine_cfg: EngineCfg, ix: int) -> None:
    _check(engine_cfg, _run(engine_cfg, "flat", ix), KINDS[ix], [])


def test_depth_one(engine_cfg: EngineCfg) -> None:
    lab = _labels()
    result = _run(engine_cfg, "deep", 2, bc=0)
    _check(engine_cfg, result, TrapKind.DIV0, [lab["deep"]])


@pytest.mark.parametrize("bc", [3, 2 * BACKTRACE_KEEP, 2 * BACKTRACE_KEEP + 1, 300])
def test_recursion_and_cap(engine_cfg: EngineCfg, bc: int) -> None:
    lab = _labels()
    rec = lab["down"] + 12  # the CALL down inside down
    stack = [rec] * bc + [lab["deep"]]  # innermost first
    omitted = max(0, len(stack) - 2 * BACKTRACE_KEEP)
    if omitted:
        stack = stack[:BACKTRACE_KEEP] + stack[-BACKTRACE_KEEP:]
    result = _run(engine_cfg, "deep", 2, bc=bc, depth=1024)
    _check(engine_cfg, result, TrapKind.DIV0, stack, omitted)


def test_backtrace_lines_and_json(engine_cfg: EngineCfg) -> None:
    result = _run(engine_cfg, "deep", 2, bc=2 * BACKTRACE_KEEP + 5, depth=1024)
    trap = result.trap
    assert trap is not None and trap.backtrace is not None
    lines = trap.backtrace_lines()
    assert lines[0].startswith("#0 CALL at pc=")
    assert f"... {trap.omitted} frames omitted ..." in lines
    assert lines[-1].startswith(f"#{trap.depth - 1} CALL at pc={_labels()['deep']:#x}")
    doc = trap.to_dict()
    assert [f["pc"] for f in doc["backtrace"]] == [f.pc for f in trap.backtrace]
    assert doc["omitted"] == 6


ALWAYS = """
    PUBLIC main
    PUBLIC outer
main:   LD IX, 65536
        LD8U HL, (IX)           ; always out of bounds: main never returns
        CALL helper
        RET
outer:  CALL inner              ; depth 1 in a function that always traps
        RET
inner:  LD BC, 0
        DIVU HL, HL, BC         ; always DIV0
        RET
helper: RET
"""


@pytest.mark.parametrize(("call", "kind", "depth"), [("main", TrapKind.OOB, 0), ("outer", TrapKind.DIV0, 1)])
def test_functions_that_always_trap(engine_cfg: EngineCfg, call: str, kind: TrapKind, depth: int) -> None:
    module = load_asm(engine_cfg, ALWAYS, mem_size=65536)
    r = module.instantiate(log=None).call(call)
    trap = r.trap
    assert trap is not None and trap.kind is kind and trap.backtrace is not None, (engine_cfg.id, r)
    assert len(trap.backtrace) == depth
    if depth:
        assert trap.backtrace[0].pc == module.image.exports["outer"]
