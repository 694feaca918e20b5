"""Differential property: the native JIT agrees with the reference interpreter.

Programs come from the shared generator (``zjit.fuzz``: loops, calls and
recursion, memory traffic with read-only segments, division, primitives, fuel
and trap triggers). Each program runs on both engines following the same plan
(the entry twice, then every export); Results (status, trap kind/pc/address/
length, registers, fuel left, output, log records) and the final guest memory
must be identical: the whole module at opt levels 0 and 2 (``tier="optimized"``),
baseline code alone, and tier-up after one execution (``jit-auto1``: from the
second run on, the code is part baseline, part O2, as the background compiles
finish).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from zjit.backends.native.engine import JitBackend
from zjit.fuzz.generators import long_program
from zjit.fuzz.oracles import compare_detailed
from zjit.fuzz.program import GenProgram
from zjit.fuzz.strategies import programs, trapping_programs

from zjit.isa import TrapKind

pytestmark = pytest.mark.skipif(not JitBackend.available(), reason="native code not supported here")

_SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


CONFIGS = ["jit-O0", "jit-O2", "jit-baseline", "jit-auto1"]
"""Configurations of ``zjit.runtime.ENGINE_VARIANTS`` compared with the interpreter."""


def _check(program: GenProgram, config: str) -> None:
    policy = program.policy(use_cache=False)
    mismatch, runs = compare_detailed(program, ("interp", config), policy=policy)
    assert mismatch is None, mismatch.report() + "\n\n" + program.asm
    assert all(r.error is None or not r.crashed for r in runs)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
@_SETTINGS
@given(program=programs())
def test_jit_matches_interpreter(config: str, program: GenProgram) -> None:
    _check(program, config)


def _trap_test(kind: TrapKind) -> None:
    @settings(max_examples=8, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(program=trapping_programs(kind))
    def inner(program: GenProgram) -> None:
        for config in CONFIGS:
            _check(program, config)

    inner()


@pytest.mark.parametrize("kind", [TrapKind.OOB, TrapKind.DIV0, TrapKind.FUEL, TrapKind.CALL_DEPTH,
                                  TrapKind.WRITE_PROTECT, TrapKind.HOST])
def test_trap_programs_match(kind: TrapKind) -> None:
    _trap_test(kind)


@pytest.mark.parametrize("seed", [1, 2])
def test_long_programs_match(seed: int) -> None:
    for config in ("jit-O2", "jit-baseline"):
        _check(long_program(seed), config)
