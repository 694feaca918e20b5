"""Code generation options that change the generated machine code."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..targets import HOST_TRIPLE

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True)
class CodegenOptions:
    """What the lowering needs beyond the IR.

    ``fuel`` compiles per-block metering (``Policy.fuel is not None``);
    ``interrupts`` polls the context's interrupt flag at loop headers and at
    entries of functions on a cycle of calls; ``stack_guard`` checks the native
    stack pointer at every recursive guest CALL (a safety net behind the
    engine's stack sizing); ``symbol_prefix`` starts
    every global symbol (entry points); ``unroll`` lets LLVM unroll guest loops
    (off by default: fully unrolled guarded loops cost much compile time for
    little speed); ``loops`` versions the countable innermost loops of O2 code
    (guarded fast copies without per-access checks, interrupt polls and fuel
    checks: :mod:`zjit.backends.middle.ivs`, :mod:`zjit.backends.llvm.emit_loops`;
    off for comparisons) and ``fast_unroll`` is how many times LLVM unrolls
    the fast copies the plan marks (1: not at all). ``mem_size`` and ``readonly`` (sorted, merged ``(start, end)``
    ranges), when given, are compiled in as constants and the code may only run
    with exactly that memory size and those read-only ranges; None reads them from
    the context at run time (AOT objects). ``call_sites`` gives every guest
    function line-tables-only debug info: each guest CALL's native call carries
    a location whose line is the CALL's pc + 1, so ``.debug_line`` and the CFI
    of the object are a frame table that trap-path backtraces read
    (:mod:`zjit.backends.objfile.frames`); the machine code is the same.
    """

    triple: str = HOST_TRIPLE
    opt_level: int = 2
    fuel: bool = False
    interrupts: bool = True
    stack_guard: bool = True
    symbol_prefix: str = "zjit_"
    unroll: bool = False
    loops: bool = True
    fast_unroll: int = 4
    loop_pipeline: bool = True
    mem_size: int | None = None
    readonly: tuple[tuple[int, int], ...] | None = None
    cpu: str = "generic"
    call_sites: bool = False

    @property
    def versioning(self) -> bool:
        """Whether the lifter versions loops for this code (O2 with ``loops``)."""
        return self.loops and self.opt_level >= 2

    def as_key(self) -> dict[str, Any]:
        """JSON-ready form (part of the code cache key)."""
        d = asdict(self)
        if self.readonly is not None:
            d["readonly"] = [list(r) for r in self.readonly]
        return d
