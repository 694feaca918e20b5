"""Interrupting loops of every shape: TIMEOUT at a block leader, soon, with the exact state.

The native engine polls the interrupt flag at loop headers, at the entries of
recursive functions and, in versioned loops, once per chunk of at most
``POLL_BUDGET`` guest instructions (docs/jit.md). Each shape of
``bench/interrupt_latency.py`` (tight, calls, memory traffic, nested, and two
versioned loops) runs without end on a guest thread; the test interrupts it and checks that the run ends
with TIMEOUT well within a generous bound (the bound itself is measured by
``bench/interrupt_latency.py``), at a block leader, and, for metered code,
in a state that is exactly the state of a deterministic run: the same code run
again with exactly the fuel the interrupted run used stops with FUEL at the
same leader with the same registers and memory.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from zjit.backends.middle.ir import LoopGuard
from zjit.backends.middle.ivs import POLL_BUDGET
from zjit.backends.middle.lift import lift
from zjit.backends.native.engine import JitBackend
from zjit.verifier import verify

import zjit
from zjit.asm import assemble
from zjit.isa import TrapKind

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import interrupt_latency  # noqa: E402

pytestmark = pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")

BOUND = 2.0
"""Seconds from interrupt() to run() returning that count as a failure (the
measured latency is about a millisecond; this leaves room for a busy machine)."""
FUEL = 1 << 62

SHAPES, VERSIONED = interrupt_latency.SHAPES, interrupt_latency.VERSIONED


def _image(shape: str) -> zjit.ModuleImage:
    return assemble(SHAPES[shape], f"{shape}.s")


def _interrupted(inst: zjit.Instance, fuel: int | None) -> tuple[zjit.Result, float]:
    box: dict[str, Any] = {}
    started = threading.Event()

    def worker() -> None:
        started.set()
        box["result"] = inst.run(fuel=fuel)
        box["end"] = time.perf_counter()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    started.wait()
    time.sleep(0.02)
    t0 = time.perf_counter()
    inst.interrupt()
    thread.join(BOUND + 20)
    assert not thread.is_alive(), "the run did not stop"
    return box["result"], box["end"] - t0


def test_versioned_shapes_are_versioned() -> None:
    """The shapes meant to exercise the per-chunk poll do get a guard."""
    for shape in VERSIONED:
        mod = lift(verify(_image(shape)), versioning=True)
        assert any(isinstance(b.term, LoopGuard) for fn in mod.functions.values() for b in fn.blocks.values())
    assert POLL_BUDGET <= 1 << 16


@pytest.mark.parametrize("metered", [False, True])
@pytest.mark.parametrize(("tier", "level"), [("optimized", 0), ("optimized", 2), ("baseline", 2), ("auto", 2)])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_interrupt_ends_every_shape(shape: str, tier: str, level: int, metered: bool) -> None:
    img = _image(shape)
    leaders = set(verify(img).blocks)
    engine = zjit.Engine(zjit.Policy(use_cache=False, opt_level=level, tier=tier, timeout=60.0, mem_size=4 << 20))
    inst = engine.load(img).instantiate(log=None)
    fuel = FUEL if metered else None
    r, seconds = _interrupted(inst, fuel)
    assert r.trap is not None and r.trap.kind is TrapKind.TIMEOUT, r
    assert r.trap.pc in leaders
    assert seconds < BOUND
    if metered:
        assert r.fuel_left is not None
        used = FUEL - r.fuel_left
        memory = bytes(inst.memory)
        again = engine.load(img).instantiate(log=None)
        replay = again.run(fuel=used)
        assert replay.trap is not None and replay.trap.kind is TrapKind.FUEL
        assert (replay.trap.pc, replay.registers, replay.fuel_left) == (r.trap.pc, r.registers, 0)
        assert bytes(again.memory) == memory
