"""Per-function LLVM IR text builder shared by the family emitters.

:class:`FnEmitter` holds the text of one LLVM function under construction: the
current basic block, fresh temporaries, the current values of the lowering's own
state (ctx, mem, room and fuel: the parts of the guest calling convention's
state tuple S that are not guest registers, :mod:`.abi`), context fields that
never change during a run (loaded once at entry in functions without calls, at
their use otherwise, so nothing but S is live across a call), and the trap
sites whose stubs call the trap helper (see :mod:`zjit.backends.llvm.emit_traps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zjit.isa import sext

from ..context import BY_NAME, OFFSETS
from ..middle.ir import FAST, I32, Call, Const, IRBlock, IRFunction, LoopGuard, Operand, Value, block_key
from .abi import GuestABI, c_call_text, c_field, guest_abi
from .options import CodegenOptions

LIKELY = "!1"
"""``!prof`` metadata: the true edge is (almost) always taken."""
UNLIKELY = "!2"
"""``!prof`` metadata: the true edge is (almost) never taken."""
INVARIANT = "!0"
"""``!invariant.load`` metadata node."""
NO_UNROLL = "!3"
"""Loop property node: ``llvm.loop.unroll.disable``."""
FAST_UNROLL = "!4"
"""Loop property node of versioned loops' fast copies: ``llvm.loop.unroll.count``
(``CodegenOptions.fast_unroll``)."""

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
    """One edge into a trap stub: where from and what to record."""

    label: str
    kind: int
    pc: int
    regs: list[str]
    addr: str
    length: str
    fuel: str
    ctx: str
    mem: str
    """Guest memory's base pointer at the site (the stub publishes it: see
    :func:`~zjit.backends.llvm.emit_traps.trap_stubs`)."""


LSTATE = ("ctx", "mem", "room", "fuel", "cnt", "acc")
"""The lowering's own state (S without the guest registers and CMP; in a
versioned loop's fast copy also the iterations left in the chunk and the fuel
the iteration has used so far)."""
PARAMS = {"ctx": "%ctx", "mem": "%mem", "room": "%room", "fuel": "%fuel.in", "cnt": "0", "acc": "0"}
"""Their values on entry (the function's parameters)."""


@dataclass(slots=True)
class Chunk:
    """A finished LLVM basic block (phis are prepended when the function ends)."""

    label: str
    lines: list[str] = field(default_factory=list)
    phis: list[str] = field(default_factory=list)


class FnEmitter:
    """Builds the text of one LLVM function from an IR function."""

    def __init__(self, fn: IRFunction, opts: CodegenOptions, has_readonly: bool,
                 functions: dict[int, IRFunction] | None = None,
                 ftab_ids: dict[int, int] | None = None) -> None:
        self.fn = fn
        self.functions = functions if functions is not None else {fn.entry: fn}
        """Every function of the module (what callees read and return)."""
        self.ftab_ids = ftab_ids
        """Entry pc -> function table slot, for code that calls the functions
        outside the module through ``ctx.ftab`` (tier-up objects); None: every
        callee is in the module."""
        self.opts = opts
        self.abi: GuestABI = guest_abi(opts.triple)
        self.has_readonly = has_readonly
        self.chunks: list[Chunk] = []
        self.cur = Chunk("entry")
        self.ntmp = 0
        self.invariants: dict[str, str] = {}
        self.limits: set[int] = set()
        self.traps: list[TrapSite] = []
        has_calls = any(isinstance(b.term, Call) for b in fn.blocks.values())
        self.hoist = not has_calls
        """Invariant context fields are loaded in the entry block (no call in the
        function: nothing they hold would live across one)."""
        varying = {"room"} if has_calls else set()
        if has_calls and self.abi.returns_ctx:
            varying |= {"ctx", "mem"}
        if opts.fuel:
            varying.add("fuel")
        guards = [b.term for b in fn.blocks.values() if isinstance(b.term, LoopGuard)]
        if guards:
            varying.add("cnt")
            if opts.fuel:
                varying.add("acc")
        self.varying = frozenset(varying)
        """Lowering state that may differ between blocks (phis where paths meet)."""
        self.fast_header = {block_key(pc, FAST): g.fast for g in guards for pc in g.plan.body}
        """Fast copy block -> the fast copy's header."""
        self.fast_fuel: dict[int, str] = {}
        """Fast copy's header -> the fuel at the start of the current iteration."""
        self.st: dict[str, str] = dict(PARAMS)
        if not opts.fuel:
            self.st["fuel"] = "undef"
        self.block: IRBlock | None = None
        self.exit_label: dict[int, str] = {}
        self.exit_st: dict[int, dict[str, str]] = {}
        self.intrinsics: set[str] = set()
        self.helpers: set[str] = set()
        self.adapters: set[str] = set()
        self.alias: dict[int, str] = {}
        self.loop_ids: dict[int, int] = {}
        self.fast_loop_ids: set[int] = set()
        """Loop metadata nodes of fast copies to unroll (:data:`FAST_UNROLL`)."""
        self.unroll_fast = {b.term.fast for b in fn.blocks.values()
                            if isinstance(b.term, LoopGuard) and b.term.plan.unroll > 1}
        """Fast copies' headers whose plans say unroll."""
        self.md_counter: list[int] = [100]
        self.dbg: str | None = None
        """The function's ``DISubprogram`` node with ``CodegenOptions.call_sites``
        (:mod:`.call_sites`), else None."""
        self._cache: dict[str, str] = {}

    # -- lowering state ---------------------------------------------------------------
    @property
    def ctx(self) -> str:
        """The context pointer (current value)."""
        return self.st["ctx"]

    @property
    def room(self) -> str:
        """How many more guest calls may nest (current value)."""
        return self.st["room"]

    @property
    def fuel(self) -> str:
        """Fuel left (``undef`` when unmetered)."""
        return self.st["fuel"]

    @fuel.setter
    def fuel(self, value: str) -> None:
        self.st["fuel"] = value

    def rebind(self, **values: str) -> None:
        """New values of lowering state (after a call); cached loads are dropped."""
        self.st.update(values)
        self._cache.clear()

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
        ended with a terminator). Loads cached in the previous block are dropped."""
        self.chunks.append(self.cur)
        self.cur = Chunk(label)
        self._cache.clear()

    @property
    def current(self) -> str:
        """Label of the block being written."""
        return self.cur.label

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

    def pack_cmp(self, lhs: Operand, rhs: Operand) -> str:
        """The packed CMP of S (lo32 = lhs, hi32 = rhs) as an i64 operand."""
        if isinstance(lhs, Const) and isinstance(rhs, Const):
            return str(sext((lhs.value & 0xFFFF_FFFF) | (rhs.value & 0xFFFF_FFFF) << 32, 64))
        lo, hi, sh, out = self.tmp(), self.tmp(), self.tmp(), self.tmp("cmp")
        self.emit(f"{lo} = zext i32 {self.val(lhs)} to i64")
        self.emit(f"{hi} = zext i32 {self.val(rhs)} to i64")
        self.emit(f"{sh} = shl i64 {hi}, 32")
        self.emit(f"{out} = or i64 {lo}, {sh}")
        return out

    def unpack_cmp(self, packed: str, lhs: str | None, rhs: str | None) -> None:
        """Define ``lhs``/``rhs`` (LLVM names, None: not needed) from a packed CMP."""
        if lhs is not None:
            self.emit(f"{lhs} = trunc i64 {packed} to i32")
        if rhs is not None:
            h = self.tmp()
            self.emit(f"{h} = lshr i64 {packed}, 32")
            self.emit(f"{rhs} = trunc i64 {h} to i32")

    # -- context ----------------------------------------------------------------------
    def inv(self, name: str) -> str:
        """An invariant context field: loaded once in the entry block (functions
        without calls) or where it is used, from the current ctx."""
        assert BY_NAME[name].invariant, name
        if self.hoist:
            self.invariants[name] = ll_type(name)
            return f"%c.{name}"
        key = "inv." + name
        got = self._cache.get(key)
        if got is None:
            p, got = self.field_ptr(name), self.tmp("c")
            self.emit(f"{got} = load {ll_type(name)}, ptr {p}, align 8, !invariant.load {INVARIANT}")
            self._cache[key] = got
        return got

    def field_ptr(self, name: str, extra: int = 0) -> str:
        """Pointer to a context field (``extra`` bytes further)."""
        t = self.tmp("p")
        self.emit(f"{t} = getelementptr inbounds i8, ptr {self.ctx}, i64 {OFFSETS[name] + extra}")
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
        """Guest memory base pointer (``mem`` of S)."""
        return self.st["mem"]

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
        size = self.mem_size()
        if self.hoist:
            self.limits.add(n)
            return f"%lim{n}"
        key = f"lim{n}"
        got = self._cache.get(key)
        if got is None:
            ok, v, got = self.tmp("c"), self.tmp(), self.tmp("lim")
            self.emit(f"{ok} = icmp uge i64 {size}, {sext(n, 64)}")
            self.emit(f"{v} = sub i64 {size}, {sext(n - 1, 64)}")
            self.emit(f"{got} = select i1 {ok}, i64 {v}, i64 0")
            self._cache[key] = got
        return got

    def host_ptr(self, addr: str) -> str:
        """Host pointer to guest address ``addr`` (already bounds-checked)."""
        t = self.tmp("a")
        self.emit(f"{t} = getelementptr i8, ptr {self.mem()}, i64 {addr}")
        return t

    def c_call(self, adapter: str, args: list[str], result: str | None = None) -> None:
        """Call a C function of the context (:mod:`.abi` adapters): ``args`` are its
        typed C arguments (``host_call``'s start with the context)."""
        fn = ""
        if self.abi.adapters:
            self.adapters.add(adapter)
            if c_field(adapter) != "host_call":
                args = [f"ptr {self.ctx}", *args]
        else:
            fn = self.inv(c_field(adapter))
        lhs = f"{result} = " if result is not None else ""
        self.emit(lhs + c_call_text(self.abi, adapter, fn, args))

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
            if target in self.unroll_fast and self.opts.fast_unroll > 1:
                self.fast_loop_ids.add(n)
        return f", !llvm.loop !{n}"

    def intrinsic(self, decl: str) -> None:
        """Request a module-level declaration (``declare ...``)."""
        self.intrinsics.add(decl)

    # -- entry block ---------------------------------------------------------------------
    def entry_lines(self) -> list[str]:
        """Loads of the invariants requested while emitting the body (functions
        without calls)."""
        out: list[str] = []
        for name, ty in sorted(self.invariants.items(), key=lambda kv: OFFSETS[kv[0]]):
            out.append(f"  %g.{name} = getelementptr inbounds i8, ptr %ctx, i64 {OFFSETS[name]}")
            out.append(f"  %c.{name} = load {ty}, ptr %g.{name}, align 8, !invariant.load {INVARIANT}")
        for n in sorted(self.limits):
            out.append(f"  %lim{n}.ok = icmp uge i64 %c.mem_size, {sext(n, 64)}")
            out.append(f"  %lim{n}.v = sub i64 %c.mem_size, {sext(n - 1, 64)}")
            out.append(f"  %lim{n} = select i1 %lim{n}.ok, i64 %lim{n}.v, i64 0")
        return out
