"""Code generation options that change the generated machine code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..targets import HOST_TRIPLE


@dataclass(frozen=True, slots=True)
class CodegenOptions:
    """What the lowering needs beyond the IR.

    ``fuel`` compiles per-block metering (``Policy.fuel is not None``);
    ``interrupts`` polls the context's interrupt flag at function entries and loop
    headers; ``stack_guard`` checks the native stack pointer at every guest CALL
    (a safety net behind the engine's stack sizing); ``symbol_prefix`` starts
    every global symbol (entry points).
    """

    triple: str = HOST_TRIPLE
    opt_level: int = 2
    fuel: bool = False
    interrupts: bool = True
    stack_guard: bool = True
    symbol_prefix: str = "zjit_"
    cpu: str = "generic"

    def as_key(self) -> dict[str, Any]:
        """JSON-ready form (part of the code cache key)."""
        return asdict(self)
