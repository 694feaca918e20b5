"""Verification cost: CPU time per 1,000 instructions and peak memory at the code cap.

Builds modules from trap-free programs of :func:`zjit.fuzz.generators.long_program`
(about 1,000 instructions each; the CODE of several programs is concatenated for
the 10,000-instruction module, since branches are relative and every program ends
in RET or JR, each copy is self-contained) and times :func:`zjit.verifier.verify`
on them (best of ``--repeat``, process CPU time). For the cap, the 10,000-instruction
CODE is repeated up to ``Policy.max_code_bytes`` (16 MiB, about 4M instructions)
and verified once in a fresh subprocess, which reports the time and the growth of
its peak resident set (``ru_maxrss``) across the call; so is a dense worst case of
4M instructions that are all ``CALL +1`` (then RET): every instruction is a block
leader and a function entry. Not a test: the figures go into docs/verifier.md.

    python bench/verify_bench.py [--repeat R] [--no-cap] [--cap-bytes N]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import struct
import subprocess
import sys
import time

from zjit.fuzz.generators import long_program
from zjit.verifier import verify

from zjit.container.rom import instruction_starts
from zjit.encoding import pack
from zjit.image import ModuleImage
from zjit.isa import BY_MNEMONIC
from zjit.policy import Policy


def _image(instructions: int) -> ModuleImage:
    """CODE of generated ~1,000-instruction programs, concatenated until it holds
    at least ``instructions`` instructions (entry 0, no segments)."""
    code = b""
    seed = 0
    while len(instruction_starts(code)) < instructions:
        code += long_program(f"verify-bench:{seed}", 1000).image().code
        seed += 1
    return ModuleImage(code=code, name="bench")


def per_thousand(instructions: int, repeat: int) -> dict[str, float]:
    """Best CPU milliseconds per 1,000 instructions for one generated module."""
    image = _image(instructions)
    count = len(verify(image).instrs)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        verify(image)
        best = min(best, time.process_time() - t0)
    return {"instructions": count, "best_ms": best * 1e3, "ms_per_1000": best * 1e6 / count}


def dense_calls_image(code_bytes: int) -> ModuleImage:
    """``CALL +1`` in every word but the last, which is RET."""
    call, ret = pack(BY_MNEMONIC["CALL"].opcode, imm12=1), pack(BY_MNEMONIC["RET"].opcode)
    return ModuleImage(code=struct.pack("<I", call) * (code_bytes // 4 - 1) + struct.pack("<I", ret), name="calls")


def tiled_image(code_bytes: int) -> ModuleImage:
    """A module whose CODE is a 10,000-instruction program repeated to ``code_bytes``."""
    unit = _image(10_000).code
    copies = max(1, code_bytes // len(unit))
    return ModuleImage(code=unit * copies, name="tiled")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cap_child(code_bytes: int, kind: str) -> dict[str, float]:
    """Verify a tiled or dense module once; run in a fresh process so ru_maxrss is its own."""
    image = tiled_image(code_bytes) if kind == "tiled" else dense_calls_image(code_bytes)
    verify(ModuleImage(code=image.code[-4:]))  # one-time tables are built before measuring
    policy = Policy(max_code_bytes=max(code_bytes, Policy().max_code_bytes))
    before = _maxrss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    program = verify(image, policy)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _maxrss_bytes()
    count = len(program.instrs)
    return {
        "code_bytes": len(image.code), "instructions": count, "wall_s": wall, "cpu_s": cpu,
        "maxrss_before_mib": before / 2**20, "maxrss_after_mib": after / 2**20,
        "rss_delta_bytes_per_instruction": (after - before) / count,
        "ms_per_1000": cpu * 1e6 / count,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-cap", action="store_true", help="skip the 16 MiB module")
    ap.add_argument("--cap-bytes", type=int, default=Policy().max_code_bytes)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="tiled", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(cap_child(args.child, args.kind)))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}")
    for n in (1_000, 10_000):
        r = per_thousand(n, args.repeat)
        print(f"{r['instructions']:>9,} instructions: {r['best_ms']:8.2f} ms, "
              f"{r['ms_per_1000']:.3f} ms CPU per 1,000 instructions")
    for kind in () if args.no_cap else ("tiled", "dense"):
        out = subprocess.run([sys.executable, __file__, "--child", str(args.cap_bytes), "--kind", kind],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)
        print(f"{r['instructions']:>9,} instructions ({kind}, {r['code_bytes']:,} bytes): "
              f"{r['cpu_s']:.2f} s CPU ({r['wall_s']:.2f} s wall), "
              f"{r['ms_per_1000']:.3f} ms per 1,000; peak RSS {r['maxrss_before_mib']:.0f} -> "
              f"{r['maxrss_after_mib']:.0f} MiB, {r['rss_delta_bytes_per_instruction']:.1f} bytes per instruction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
