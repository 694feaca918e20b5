"""Stores before a trap stay in guest memory, on every engine and tier.

Guest memory is a ``noalias`` parameter of compiled functions and the trap
helper never receives it, so to LLVM a store followed by a trap exit (a
noreturn call, then ``unreachable``) looked dead: with LLVM's ``default<O2>``
(modules with versioned loops) dead-store elimination dropped it, and the
trapped run's memory missed the store. The differential campaign found it
(a store, then a loop that runs out of fuel at its header). Each program here
stores, then traps in a module that also has a versioned loop; the memory
after the trap must be the interpreter's.
"""

from __future__ import annotations

import pytest
from engine_harness import CONFIGS, EngineCfg, load_asm

LOOP_FUEL = """
    PUBLIC main
main:
    LD A, 12
    ST64 (IX), A            ; stored before the loop ...
loop:
    DEC A
    ST64 (IX), A
    CPI A, 0
    JR ne, loop             ; ... which runs out of fuel at its header
    RET
"""

STORE_THEN_OOB = """
    PUBLIC main
main:
    LD A, 77
    ST8 (IX), A             ; kept ...
    LD HL, 0
copy:
    ST8 (HL+0x100), A       ; a versioned loop elsewhere in the function
    INC HL
    CPI HL, 16
    JR ltu, copy
    LD BC, 0x7fffffff
    ST8 (BC), A             ; ... when this store traps OOB
    RET
"""

STORE_THEN_DIV0 = """
    PUBLIC main
main:
    LD A, 5
    ST64 (IX+8), A
    LD HL, 0
zero:
    ST8 (HL+0x200), A
    INC HL
    CPI HL, 32
    JR ltu, zero
    DIVU A, A, DE           ; DE = 0
    ST64 (IX+16), A
    RET
"""


def _interp() -> EngineCfg:
    return next(c for c in CONFIGS if c.backend == "interp")


@pytest.mark.parametrize(("src", "fuel"), [(LOOP_FUEL, 5), (STORE_THEN_OOB, None), (STORE_THEN_DIV0, None)])
def test_stores_before_a_trap_are_kept(engine_cfg: EngineCfg, src: str, fuel: int | None) -> None:
    out = []
    for cfg in (_interp(), engine_cfg):
        inst = load_asm(cfg, src, mem_size=0x10000).instantiate(log=None)
        r = inst.run(fuel=fuel)
        assert r.trap is not None
        out.append((r, bytes(inst.memory)))
    (ri, mi), (rj, mj) = out
    assert rj == ri
    assert mj == mi, "guest memory after the trap differs from the interpreter's"
    assert any(mi[:32])                     # the store before the trap is there
