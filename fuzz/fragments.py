"""Building blocks of the program generators: configuration, instruction tables
derived from the ISA table, and :class:`Frag`, a piece of generated code with the
instructions a trap-free pass through it executes."""

from __future__ import annotations

from dataclasses import dataclass, field

from zjit.isa import BY_MNEMONIC, NUM_REGS, OPS, REG_NAMES, Family, Fmt, OpInfo

_ARITH_FAMILIES = (
    Family.ALU, Family.DIV, Family.SHIFT, Family.BITCOUNT, Family.CMPSET,
    Family.INCDEC, Family.MOV, Family.NOP, Family.CP,
)
ARITH_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family in _ARITH_FAMILIES)
LOAD_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family is Family.LOAD)
STORE_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family is Family.STORE)
DIV_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family is Family.DIV)
PRIM_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family is Family.PRIM)
BULK_OPS: tuple[OpInfo, ...] = tuple(o for o in OPS if o.family is Family.BULK)

LD_OP = BY_MNEMONIC["LD"]
LD64_OP = next(o for o in LOAD_OPS if o.width == 8)
ST64_OP = next(o for o in STORE_OPS if o.width == 8)
CP_OP = next(o for o in OPS if o.fmt is Fmt.CP)
CPI_OP = next(o for o in OPS if o.fmt is Fmt.CPI)
JR_OP = next(o for o in OPS if o.family is Family.JR)
CALL_OP = next(o for o in OPS if o.family is Family.CALL)
RET_OP = next(o for o in OPS if o.family is Family.RET)
INC_OP = next(o for o in OPS if o.operation == "inc")
DEC_OP = next(o for o in OPS if o.operation == "dec")
PRIM_BY_NAME = {o.operation: o for o in PRIM_OPS}
BULK_BY_NAME = {o.operation: o for o in BULK_OPS}
HL, DE, A, BC, IX = range(NUM_REGS)
ALL_REGS = frozenset(range(NUM_REGS))


@dataclass(frozen=True)
class GenConfig:
    """Size and feature knobs.

    ``max_stmts`` bounds statements per body, ``max_depth`` nesting of ifs and
    loops, ``max_funcs`` helper functions, ``max_iters`` loop trip counts and
    ``budget`` the instructions a trap-free run may execute. ``trap_rate`` is the
    chance a program carries one trap trigger; ``min_static`` keeps adding
    statements until the program has that many instructions. ``big_rate`` is the
    chance of a program three times as long and one level deeper; ``export_rate``
    the chance of an exported entry label between two top-level statements;
    ``tail_jump_rate`` the chance a function ends by jumping into another one.
    """

    max_stmts: int = 12
    max_depth: int = 2
    max_funcs: int = 4
    max_iters: int = 12
    budget: int = 20_000
    trap_rate: float = 0.35
    ro_rate: float = 0.4
    fuel_rate: float = 0.4
    small_depth_rate: float = 0.1
    min_static: int = 0
    big_rate: float = 0.15
    export_rate: float = 0.05
    tail_jump_rate: float = 0.2


@dataclass
class Frag:
    """Generated lines plus the instructions a trap-free pass executes (lo..hi)."""

    lines: list[str] = field(default_factory=list)
    lo: int = 0
    hi: int = 0
    stack: int = 0  # most call-stack entries pushed while it runs

    def comment(self, text: str) -> None:
        """Append a comment line."""
        self.lines.append(f"    ; {text}")

    def ins(self, text: str) -> None:
        """Append one instruction (cost 1)."""
        self.lines.append("    " + text)
        self.lo += 1
        self.hi += 1

    def label(self, name: str) -> None:
        """Append a label line."""
        self.lines.append(f"{name}:")

    def extend(self, other: Frag, times: int = 1) -> None:
        """Append ``other``'s lines; its cost counts ``times`` times."""
        self.lines.extend(other.lines)
        self.lo += other.lo * times
        self.hi += other.hi * times
        self.stack = max(self.stack, other.stack)


def reg(i: int) -> str:
    """Register name."""
    return REG_NAMES[i]


def mem(base: int, disp: int) -> str:
    """Memory operand ``(BASE)``, ``(BASE+d)`` or ``(BASE-d)``."""
    return f"({REG_NAMES[base]})" if disp == 0 else f"({REG_NAMES[base]}{disp:+d})"


@dataclass
@dataclass
class Func:
    """A generated function: its name and code."""

    name: str
    frag: Frag
