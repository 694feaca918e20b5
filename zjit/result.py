"""Run results and traps: identical across every engine for the same input."""

from __future__ import annotations

from dataclasses import dataclass, field

from .isa import REG_NAMES, TrapKind

TYPE_CHECKING = False  # typing stays unimported at run time (docs/startup.md)
if TYPE_CHECKING:
    from typing import Any


BACKTRACE_KEEP = 32
"""Frames kept at each end of a long backtrace: the innermost and the outermost
``BACKTRACE_KEEP``; the ones between are counted in ``Trap.omitted``."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One active guest call at a trap: ``pc`` of the CALL instruction (its return
    point is ``pc + 4``) and its ``file:line`` when debug info exists."""

    pc: int
    source: str | None = None

    def __str__(self) -> str:
        return f"CALL at pc={self.pc:#x}" + (f" [{self.source}]" if self.source else "")


@dataclass(frozen=True)
class Trap:
    """A trap (``isa.md`` 4): kind, pc of the trapping instruction, and for memory
    traps the address and length of the failing access or span. ``cause`` is the
    host handler's exception for HOST traps (also chained as ``__cause__`` when
    raising), and a KeyboardInterrupt for a TIMEOUT that Ctrl-C caused. ``source`` is ``file:line`` when debug info exists.

    ``backtrace`` is the guest call stack at the trap, innermost first: one
    :class:`Frame` per active CALL (the CALL whose return point is on top of the
    stack comes first; empty when the trap is at call depth 0; None where the
    engine could not walk the guest stack: arm64 O2 code that trapped in a
    function keeping its return address only in ``x30``, docs/api.md). Of a stack
    deeper than ``2 * BACKTRACE_KEEP`` only the innermost and the outermost
    ``BACKTRACE_KEEP`` frames are kept, ``omitted`` counts the ones between
    (``len(backtrace) + omitted`` is the call depth at the trap)."""

    kind: TrapKind
    pc: int
    address: int | None = None
    length: int | None = None
    source: str | None = None
    cause: BaseException | None = field(default=None, compare=False)
    backtrace: tuple[Frame, ...] | None = None
    omitted: int = 0

    @property
    def depth(self) -> int | None:
        """Guest call depth at the trap (active CALLs); None without a backtrace."""
        return None if self.backtrace is None else len(self.backtrace) + self.omitted

    def backtrace_lines(self) -> list[str]:
        """The backtrace as text lines, innermost first, as ``zjit run`` prints
        them under the trap line (``#0 CALL at pc=0xc [prog.s:5]``)."""
        bt = self.backtrace
        if bt is None:
            return ["(no backtrace: the engine could not walk the guest stack)"]
        lines = [f"#{i} {f}" for i, f in enumerate(bt[:BACKTRACE_KEEP])]
        if self.omitted:
            lines.append(f"... {self.omitted} frames omitted ...")
        first = len(bt) + self.omitted - len(bt[BACKTRACE_KEEP:])
        lines += [f"#{first + i} {f}" for i, f in enumerate(bt[BACKTRACE_KEEP:])]
        return lines

    @property
    def code(self) -> int:
        """Stable numeric trap code."""
        return int(self.kind)

    def __str__(self) -> str:
        text = f"{self.kind.name} at pc={self.pc:#x}"
        if self.address is not None:
            text += f" address={self.address:#x} length={self.length}"
        if self.source:
            text += f" ({self.source})"
        if self.cause is not None:
            text += f": {type(self.cause).__name__}: {self.cause}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind.name,
            "code": self.code,
            "pc": self.pc,
            "address": self.address,
            "length": self.length,
            "source": self.source,
            "cause": None if self.cause is None else f"{type(self.cause).__name__}: {self.cause}",
            "backtrace": None if self.backtrace is None else [{"pc": f.pc, "source": f.source}
                                                              for f in self.backtrace],
            "omitted": self.omitted,
        }


@dataclass(frozen=True)
class Result:
    """Outcome of one run. Two Results are equal when status, trap, registers, fuel left, output and log records are equal (what
    every engine must agree on)."""

    trap: Trap | None
    registers: dict[str, int]
    fuel_left: int | None
    stdout: bytes = b""
    log: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the run ended normally (RET on an empty call stack)."""
        return self.trap is None

    @property
    def status(self) -> str:
        """``"ok"`` or ``"trap"``."""
        return "ok" if self.trap is None else "trap"

    def reg(self, name: str) -> int:
        """Register value by name (case-insensitive)."""
        return self.registers[name.upper()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``zjit run --json``)."""
        return {
            "status": self.status,
            "trap": None if self.trap is None else self.trap.to_dict(),
            "registers": {n: self.registers[n] for n in REG_NAMES},
            "fuel_left": self.fuel_left,
            "stdout": self.stdout.decode("utf-8", "backslashreplace"),
            "log": [
                [t.decode("utf-8", "backslashreplace"), m.decode("utf-8", "backslashreplace")]
                for t, m in self.log
            ],
        }
