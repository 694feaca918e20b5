"""Per-function LLVM IR text builder shared by the family emitters.

:class:`FnEmitter` holds the text of one LLVM function under construction: the
current basic block, fresh temporaries, per-function invariants loaded from the
context at entry (memory base and size, access limits, limits and host function
pointers), the current fuel value, and the trap sites that branch to the
function's single trap exit (see :mod:`zjit.backends.llvm.emit_traps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zjit.isa import sext

from ..context import BY_NAME, OFFSETS
from ..middle.ir import CMPL, I32, STATE_NAMES, Const, IRBlock, IRFunction, Operand, Value, state_type
from .options import CodegenOptions

LIKELY = "!1"
"""``!prof`` metadata: the true edge is (almost) always taken."""
UNLIKELY = "!2"
"""``!prof`` metadata: the true edge is (almost) never taken."""
INVARIANT = "!0"
"""``!invariant.load`` metadata node."""
NO_UNROLL = "!3"
"""Loop property node: ``llvm.loop.unroll.disable``."""

def ret_regs(triple: str) -> int:
    """How many values a guest function returns in machine registers: as many as
    a guaranteed tail call (``musttail``) allows, 3 on x86-64 and 8 on aarch64
    (more would be returned through memory, which ``musttail`` refuses)."""
    return 8 if triple.startswith(("aarch64", "arm64")) else 3


@dataclass(frozen=True, slots=True)
class RetLayout:
    """How a guest function returns the state variables it modifies.

    ``fields`` (the CMP halves first, then registers) come back in an LLVM struct
    small enough for registers; the remaining modified registers (``spilled``)
    are stored into ``ctx.regs`` at RET and read from there by the caller. Whether
    the function trapped is not part of it (a trap sets ``ctx.trap_kind``, which
    callers test after each call), nor is fuel (``ctx.fuel``).
    """

    mods: tuple[int, ...]
    fields: tuple[int, ...]
    spilled: tuple[int, ...]

    @property
    def type(self) -> str:
        """Name of the LLVM return struct (the same for the same fields)."""
        return "%rt." + ("_".join(STATE_NAMES[v] for v in self.fields) or "none")

    def type_def(self) -> str:
        """The type definition line for :attr:`type`."""
        return f"{self.type} = type {{ {', '.join(state_type(v) for v in self.fields)} }}"


def ret_layout(mods: tuple[int, ...], triple: str) -> RetLayout:
    """The :class:`RetLayout` of a function modifying ``mods`` on ``triple``."""
    order = [v for v in mods if v >= CMPL] + [v for v in mods if v < CMPL]
    n = ret_regs(triple)
    return RetLayout(mods, tuple(order[:n]), tuple(order[n:]))

_LLVM_TYPES = {"u64": "i64", "i64": "i64", "ptr": "ptr", "fn": "ptr"}


def const_int(text: str) -> int | None:
    """The value of an LLVM integer literal, or None for a named value."""
    if text and (text[0].isdigit() or text[0] == "-"):
        return int(text)
    return None


def ll_type(field_name: str) -> str:
    """LLVM type of a context field."""
    return _LLVM_TYPES[BY_NAME[field_name].kind]


@dataclass(slots=True)
class TrapSite:
    """One edge into the trap exit: where from and what to record."""

    label: str
    kind: int
    pc: int
    regs: list[str]
    addr: str
    length: str
    fuel: str


@dataclass(slots=True)
class Chunk:
    """A finished LLVM basic block (phis are prepended when the function ends)."""

    label: str
    lines: list[str] = field(default_factory=list)
    phis: list[str] = field(default_factory=list)


class FnEmitter:
    """Builds the text of one LLVM function from an IR function."""

    def __init__(self, fn: IRFunction, opts: CodegenOptions, has_readonly: bool,
                 modifies: dict[int, tuple[int, ...]] | None = None) -> None:
        self.fn = fn
        self.modifies = modifies if modifies is not None else {fn.entry: fn.modifies}
        self.layout = ret_layout(fn.modifies, opts.triple)
        self.ret = self.layout.type
        self.opts = opts
        self.has_readonly = has_readonly
        self.chunks: list[Chunk] = []
        self.cur = Chunk("entry")
        self.ntmp = 0
        self.invariants: dict[str, str] = {}
        self.limits: set[int] = set()
        self.traps: list[TrapSite] = []
        self.fuel = "%fuel.in" if opts.fuel else "0"
        self.block: IRBlock | None = None
        self.exit_label: dict[int, str] = {}
        self.exit_fuel: dict[int, str] = {}
        self.intrinsics: set[str] = set()
        self.helpers: set[str] = set()
        self.alias: dict[int, str] = {}
        self.entry_ptrs: set[str] = set()
        self.needs_propagate = False
        self.loop_ids: dict[int, int] = {}
        self.md_counter: list[int] = [100]

    # -- text ---------------------------------------------------------------------
    def tmp(self, hint: str = "t") -> str:
        """A fresh local name."""
        self.ntmp += 1
        return f"%{hint}{self.ntmp}"

    def label(self, hint: str = "L") -> str:
        """A fresh label name (without ``%``)."""
        self.ntmp += 1
        return f"{hint}{self.ntmp}"

    def emit(self, line: str) -> None:
        """Append one instruction to the current block."""
        self.cur.lines.append("  " + line)

    def start(self, label: str) -> None:
        """Close the current block and start ``label`` (the previous block must have
        ended with a terminator)."""
        self.chunks.append(self.cur)
        self.cur = Chunk(label)

    @property
    def current(self) -> str:
        """Label of the block being written."""
        return self.cur.label

    def callee_layout(self, callee: int) -> RetLayout:
        """The return layout of guest function ``callee``."""
        return ret_layout(self.modifies[callee], self.opts.triple)

    # -- operands -------------------------------------------------------------------
    def val(self, x: Operand) -> str:
        """LLVM text of an IR operand (constants as signed decimals)."""
        if type(x) is Value:
            return self.alias.get(x.id) or f"%v{x.id}"
        assert isinstance(x, Const)
        return str(sext(x.value, 32 if x.ty == I32 else 64))

    def bind(self, v: Value, text: str) -> None:
        """Make IR value ``v`` stand for the LLVM value ``text`` (no instruction)."""
        self.alias[v.id] = text

    @staticmethod
    def dest(v: Value) -> str:
        """LLVM name of an IR value."""
        return f"%v{v.id}"

    def lo32(self, x: Operand) -> str:
        """``x`` truncated to i32."""
        if isinstance(x, Const):
            return str(sext(x.value, 32))
        if x.ty == I32:
            return self.val(x)
        t = self.tmp()
        self.emit(f"{t} = trunc i64 {self.val(x)} to i32")
        return t

    def zext32(self, x: Operand) -> str:
        """``x`` with its high 32 bits cleared, as i64."""
        if isinstance(x, Const):
            return str(x.value & 0xFFFF_FFFF)
        t = self.tmp()
        self.emit(f"{t} = and i64 {self.val(x)}, 4294967295")
        return t

    # -- context ----------------------------------------------------------------------
    def inv(self, name: str) -> str:
        """An invariant context field, loaded once in the entry block."""
        assert BY_NAME[name].invariant, name
        self.invariants[name] = ll_type(name)
        return f"%c.{name}"

    def entry_ptr(self, name: str) -> str:
        """Pointer to a context field, computed once in the entry block."""
        self.entry_ptrs.add(name)
        return f"%g.{name}"

    def field_ptr(self, name: str, extra: int = 0) -> str:
        """Pointer to a context field (``extra`` bytes further)."""
        t = self.tmp("p")
        self.emit(f"{t} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name] + extra}")
        return t

    def load_field(self, name: str, extra: int = 0) -> str:
        """Load a (mutable) context field."""
        p = self.field_ptr(name, extra)
        t = self.tmp()
        self.emit(f"{t} = load {ll_type(name)}, ptr {p}, align 8")
        return t

    def store_field(self, name: str, value: str, extra: int = 0) -> None:
        """Store a context field."""
        p = self.field_ptr(name, extra)
        self.emit(f"store {ll_type(name)} {value}, ptr {p}, align 8")

    def mem(self) -> str:
        """Guest memory base pointer."""
        return self.inv("mem_base")

    def mem_size(self) -> str:
        """Guest memory size (a constant when compiled in)."""
        if self.opts.mem_size is not None:
            return str(self.opts.mem_size)
        return self.inv("mem_size")

    def limit(self, n: int) -> str:
        """``mem_size - n + 1`` (0 when smaller than n): an n-byte access at ``a`` is
        in bounds iff ``a <u limit``."""
        if self.opts.mem_size is not None:
            return str(max(self.opts.mem_size - n + 1, 0))
        self.mem_size()
        self.limits.add(n)
        return f"%lim{n}"

    def host_ptr(self, addr: str) -> str:
        """Host pointer to guest address ``addr`` (already bounds-checked)."""
        t = self.tmp("a")
        self.emit(f"{t} = getelementptr i8, ptr {self.mem()}, i64 {addr}")
        return t

    def loop_md(self, target: int) -> str:
        """Suffix for a branch to IR block ``target``: loop metadata (unrolling off)
        when it is a loop header and the options ask for it, else empty."""
        if self.opts.unroll:
            return ""
        b = self.fn.blocks.get(target)
        if b is None or not b.loop_header:
            return ""
        n = self.loop_ids.get(target)
        if n is None:
            n = self.loop_ids[target] = self.md_counter[0]
            self.md_counter[0] += 1
        return f", !llvm.loop !{n}"

    def intrinsic(self, decl: str) -> None:
        """Request a module-level declaration (``declare ...``)."""
        self.intrinsics.add(decl)

    # -- entry block ---------------------------------------------------------------------
    def entry_lines(self) -> list[str]:
        """Loads of the invariants requested while emitting the body."""
        out: list[str] = []
        for name in sorted(self.entry_ptrs | set(self.invariants), key=lambda n: OFFSETS[n]):
            out.append(f"  %g.{name} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name]}")
        for name, ty in sorted(self.invariants.items(), key=lambda kv: OFFSETS[kv[0]]):
            out.append(f"  %c.{name} = load {ty}, ptr %g.{name}, align 8, !invariant.load {INVARIANT}")
        for n in sorted(self.limits):
            out.append(f"  %lim{n}.ok = icmp uge i64 %c.mem_size, {sext(n, 64)}")
            out.append(f"  %lim{n}.v = sub i64 %c.mem_size, {sext(n - 1, 64)}")
            out.append(f"  %lim{n} = select i1 %lim{n}.ok, i64 %lim{n}.v, i64 0")
        return out
