"""Line emitter for one generated block function.

Registers live in Python locals named after them (``HL``, ``DE``, ``A``, ``BC``,
``IX``) and the compare state in ``cl``/``cr``. A local is read from the state
list ``S`` on first use and written back only if the block assigned it: at the
block's exit, before a helper call, and on every trap path. Code is straight
line (the only branches are trap exits), so tracking "loaded" and "dirty" sets
while emitting in program order is exact.
"""

from __future__ import annotations

from zjit.isa import NUM_REGS, REG_NAMES, TrapKind
from zjit.machine import Specialisation

from .helpers import CMP_L, CMP_R

M32 = "0xFFFFFFFF"
M64 = "0xFFFFFFFFFFFFFFFF"


class BlockEmitter:
    """Collects the body lines of one block function."""

    def __init__(self, spec: Specialisation) -> None:
        self.spec = spec
        self.lines: list[str] = []
        self._loaded: set[int] = set()
        self._dirty: set[int] = set()
        self._cmp_loaded = False
        self._cmp_dirty = False

    # --- plain lines -------------------------------------------------------------
    def line(self, text: str, indent: int = 0) -> None:
        """Append one line of code (``indent`` extra levels)."""
        self.lines.append("    " * indent + text)

    # --- registers -----------------------------------------------------------------
    def reg(self, i: int) -> str:
        """Name of register ``i``'s local, loading it from the state on first use."""
        if i not in self._loaded:
            self.line(f"{REG_NAMES[i]} = S[{i}]")
            self._loaded.add(i)
        return REG_NAMES[i]

    def assign(self, i: int, expr: str) -> None:
        """Emit ``R[i] := expr``. Call only after every check of the instruction."""
        self.line(f"{REG_NAMES[i]} = {expr}")
        self._loaded.add(i)
        self._dirty.add(i)

    def cmp(self) -> tuple[str, str]:
        """Names of the compare-state locals, loading them on first use."""
        if not self._cmp_loaded:
            self.line(f"cl = S[{CMP_L}]; cr = S[{CMP_R}]")
            self._cmp_loaded = True
        return "cl", "cr"

    def set_cmp(self, lhs: str, rhs: str) -> None:
        """Emit ``CMP := (lhs, rhs)``."""
        self.line(f"cl = {lhs}; cr = {rhs}")
        self._cmp_loaded = True
        self._cmp_dirty = True

    def _writeback(self) -> list[str]:
        out = [f"S[{i}] = {REG_NAMES[i]}" for i in range(NUM_REGS) if i in self._dirty]
        if self._cmp_dirty:
            out.append(f"S[{CMP_L}] = cl; S[{CMP_R}] = cr")
        return out

    def flush(self) -> None:
        """Write every assigned local back to the state (before a helper or exit)."""
        for text in self._writeback():
            self.line(text)
        self._dirty.clear()
        self._cmp_dirty = False

    def forget(self, i: int) -> None:
        """A helper may have changed register ``i`` in the state: re-read it."""
        self._loaded.discard(i)

    # --- exits -------------------------------------------------------------------
    def trap_if(self, cond: str, kind: TrapKind, pc: int,
                address: str = "None", length: str = "None") -> None:
        """``if cond:`` write back and stop with a trap (the instruction has no effect)."""
        self.line(f"if {cond}:")
        for text in self._writeback():
            self.line(text, 1)
        self.line(f"return TRAP(S, {kind.name}, {pc:#x}, {address}, {length})", 1)

    def call_helper(self, helper: str, pc: int) -> None:
        """Call a state-level helper; it returns False after recording a trap."""
        self.flush()
        self.line(f"if not {helper}(S, M, {pc:#x}):")
        self.line("return None", 1)
