"""Verification cost at scale (issue 11, finding 8): memory per instruction, measured
with tracemalloc (a count of bytes, not a timing; speed is in bench/verify_bench.py)."""

from __future__ import annotations

import tracemalloc

from zjit.fuzz.generators import long_program
from zjit.verifier import verify, verify_all

from zjit.image import ModuleImage


def _long_code(instructions: int) -> bytes:
    code = b""
    seed = 0
    while len(code) < 4 * instructions:
        code += long_program(f"verifier-memory:{seed}", 1000).image().code
        seed += 1
    return code


def test_memory_per_instruction_is_bounded() -> None:
    # isa.md 3 at the 16 MiB cap: at most 100 bytes per instruction while verifying
    # and for the program kept afterwards (Python allocations, traced).
    img = ModuleImage(_long_code(5_000) * 16)
    verify_all(ModuleImage(img.code[:4000]))  # one-time tables are not per-instruction costs
    tracemalloc.start()
    try:
        prog = verify(img)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n = len(prog.instrs)
    assert n > 60_000
    assert peak / n < 100 and kept / n < 100, (peak / n, kept / n)
