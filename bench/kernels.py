"""The benchmark kernels: ZASM text plus a C and a WebAssembly twin each, and how
to run the C ones (the WebAssembly ones run in :mod:`wasm_kernels`).

Every kernel reads its size parameters from guest memory (``0x1000``: N,
``0x1008``: REPS; the runner writes them before each run) and leaves its checksum
in HL. The C twin does the same work and prints the same checksum, and the WAT
twin returns it from ``main``, so the runner can check that all computed the same
thing.
"""

from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
PARAMS = 0x1000
"""Guest address of N (u64); REPS follows at PARAMS + 8."""
MEM_SIZE = 32 << 20
"""Guest memory for every kernel (the sieve needs 8 MB above 0x10000)."""


@dataclass(frozen=True)
class Kernel:
    """One benchmark: ``full`` (N, REPS) for the JIT and C, ``small`` for the interpreter."""

    name: str
    what: str
    full: tuple[int, int]
    small: tuple[int, int]

    @property
    def asm_path(self) -> Path:
        """The ZASM source."""
        return KERNEL_DIR / f"{self.name}.s"

    @property
    def wat_path(self) -> Path:
        """The WebAssembly text twin (run through Wasmtime)."""
        return KERNEL_DIR / f"{self.name}.wat"

    @property
    def c_path(self) -> Path:
        """The C twin."""
        return KERNEL_DIR / f"{self.name}.c"

    def source(self) -> str:
        """ZASM text."""
        return self.asm_path.read_text()


KERNELS: tuple[Kernel, ...] = (
    Kernel("sieve", "sieve of Eratosthenes, primes below N", (8_000_000, 1), (200_000, 1)),
    Kernel("fnv1a", "xorshift fill + FNV-1a 64 over N bytes, REPS passes", (4_000_000, 8), (60_000, 2)),
    Kernel("fib_iter", "iterative 64-bit Fibonacci, N steps", (100_000_000, 1), (400_000, 1)),
    Kernel("memcopy", "LDIR copy + byte-loop copy of N bytes, REPS passes", (4_000_000, 8), (60_000, 2)),
    Kernel("fib_rec", "naive recursive Fibonacci (CALL/RET), fib(N)", (35, 1), (21, 1)),
    Kernel("strcase", "flip ASCII letter case in place, N bytes, REPS passes", (2_000_000, 8), (50_000, 2)),
    Kernel("mulhash", "64-bit multiply/xorshift mixing, N steps", (30_000_000, 1), (250_000, 1)),
)


def set_params(memory: memoryview, n: int, reps: int) -> None:
    """Write a kernel's parameters into guest memory."""
    memory[PARAMS : PARAMS + 16] = struct.pack("<QQ", n, reps)


def compile_c(kernel: Kernel, out_dir: Path) -> Path:
    """``gcc -O2`` the C twin into ``out_dir`` (raises CalledProcessError on failure)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / kernel.name
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(kernel.c_path), f"-I{KERNEL_DIR}"],
                   check=True, capture_output=True, text=True)
    return exe


def run_c(exe: Path, n: int, reps: int, trials: int) -> tuple[int, float]:
    """(checksum, best seconds of ``trials`` calls inside one process)."""
    proc = subprocess.run([str(exe), str(n), str(reps), str(trials)], check=True,
                          capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    checksum, best_ns = proc.stdout.split()
    return int(checksum), int(best_ns) / 1e9


def gcc_version() -> str:
    """First line of ``gcc --version``."""
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "gcc not found"
    return out.splitlines()[0] if out else "gcc"
