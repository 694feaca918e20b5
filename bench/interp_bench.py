"""Guest instructions per second of the reference interpreter.

Runs a counting loop with memory traffic (a load, an add, a store, a counter
and a compare-and-branch per iteration; 6 instructions) for about 10 million
guest instructions, metered and unmetered, and prints the rate. Not a test:
the figure goes into docs/interpreter.md.

    python bench/interp_bench.py [--iterations N] [--repeat R]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import zjit
from zjit.asm import assemble

LOOP = """
PUBLIC main
main:
    LD HL, buf
    LD BC, 0
loop:                       ; 6 instructions per iteration
    LD64 A, (HL)
    ADD64 A, A, BC
    ST64 (HL+8), A
    INC BC
    CP BC, IX
    JR ltu, loop
    RET
buf: RESB 16
"""
SETUP = 3       # LD, LD before the loop and the final RET
PER_ITERATION = 6


def measure(iterations: int, fuel: int | None, repeat: int) -> float:
    """Best guest instructions/second over ``repeat`` runs."""
    engine = zjit.Engine(zjit.Policy(fuel=fuel), backend="interp")
    inst = engine.load(assemble(LOOP, "interp_bench.s")).instantiate()
    inst.call("main", ix=10)        # warm-up: generates the block code
    instructions = SETUP + PER_ITERATION * iterations
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = inst.call("main", ix=iterations)
        dt = time.perf_counter() - t0
        assert r.ok and r.reg("BC") == iterations, r
        if fuel is not None:
            assert r.fuel_left == fuel - instructions
        best = max(best, instructions / dt)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=10_000_000 // PER_ITERATION)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{args.iterations * PER_ITERATION + SETUP:,} guest instructions per run")
    for label, fuel in (("unmetered", None), ("metered", 1 << 62)):
        rate = measure(args.iterations, fuel, args.repeat)
        print(f"  {label:10s} {rate / 1e6:6.2f} M guest instructions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
