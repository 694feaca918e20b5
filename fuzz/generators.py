"""Generators of valid, always-terminating ZASM programs (pinned assembly syntax).

Every program is built from the ISA table (:data:`zjit.isa.OPS`) and is valid by
construction: it assembles and passes :func:`zjit.verifier.verify`. Termination
does not depend on what the random instructions compute: loop counters live either
in registers the loop body never writes or in a memory region (see
:mod:`zjit.fuzz.layout`) that nothing else writes; calls form a DAG; recursion is
bounded by a memory counter. The generator also tracks the number of instructions
a trap-free run executes (``min_cost..max_cost``), which equals the fuel it uses.

Entry points: :func:`generate` (one program from a :class:`Chooser`),
:func:`random_program` (seeded plain ``random``), :func:`trap_program` (a program
that deterministically traps with a given kind) and :func:`long_program` (about N
instructions, for compile-time benchmarks). Hypothesis strategies live in
:mod:`zjit.fuzz.strategies`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from zjit.image import SegmentDesc
from zjit.isa import BY_MNEMONIC, COND_NAMES, NUM_REGS, OPS, REG_NAMES, Family, Fmt, OpInfo, TrapKind

from .choosers import Chooser, RandomChooser
from .layout import (
    ALLOC_SIZES,
    INTERESTING,
    LOW_END,
    MEM_SIZES,
    MID_BASE,
    POOL,
    POOL_EXTRA,
    RO_BASE,
    RO_SIZE,
    SAFE_DIVISORS,
    SCRATCH,
    SCRATCH_SIZE,
    SLOT_BASE,
    SLOT_END,
    TEXT_BYTES,
    to_signed,
)
from .program import GenProgram

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

_LD = BY_MNEMONIC["LD"]
_LD64 = next(o for o in LOAD_OPS if o.width == 8)
_ST64 = next(o for o in STORE_OPS if o.width == 8)
_CP = next(o for o in OPS if o.fmt is Fmt.CP)
_CPI = next(o for o in OPS if o.fmt is Fmt.CPI)
_JR = next(o for o in OPS if o.family is Family.JR)
_CALL = next(o for o in OPS if o.family is Family.CALL)
_RET = next(o for o in OPS if o.family is Family.RET)
_INC = next(o for o in OPS if o.operation == "inc")
_DEC = next(o for o in OPS if o.operation == "dec")
_PRIM = {o.operation: o for o in PRIM_OPS}
_BULK = {o.operation: o for o in BULK_OPS}
HL, DE, A, BC, IX = range(NUM_REGS)
ALL_REGS = frozenset(range(NUM_REGS))

TRAP_KINDS: tuple[TrapKind, ...] = (
    TrapKind.FUEL, TrapKind.OOB, TrapKind.DIV0, TrapKind.CALL_DEPTH, TrapKind.WRITE_PROTECT,
    TrapKind.HOST,
)
"""Trap kinds a generated program can reach deterministically (TIMEOUT is wall-clock)."""


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
class _Func:
    name: str
    frag: Frag


class _Builder:
    """Builds one program; all randomness comes from ``c``."""

    def __init__(self, c: Chooser, cfg: GenConfig, trap: TrapKind | None, guaranteed: bool) -> None:
        self.c = c
        if c.chance(cfg.big_rate):
            cfg = dataclasses.replace(cfg, max_stmts=cfg.max_stmts * 3, max_depth=cfg.max_depth + 1,
                                      budget=cfg.budget * 2)
        self.cfg = cfg
        self.entries: list[str] = []
        self.pool: list[int] = [to_signed(v) for v in INTERESTING]
        self.pool += [to_signed(c.randint(0, (1 << 64) - 1)) for _ in range(POOL_EXTRA)]
        self.trap = trap
        self.guaranteed = guaranteed
        self.trap_pending = trap is not None and trap not in (TrapKind.FUEL, TrapKind.CALL_DEPTH)
        self.n_labels = 0
        self.n_slots = 0
        self.mem_size = c.choice(MEM_SIZES)
        self.has_ro = trap is TrapKind.WRITE_PROTECT or c.chance(cfg.ro_rate)
        if trap is TrapKind.HOST:
            self.ctl = "raise"
        else:
            self.ctl = c.choice(("none", "echo", "error", "echo"))
        self.funcs: list[_Func] = []
        self.rec: _Func | None = None
        self.rec_slot = 0
        self.rec_depth = 0
        self.notes: list[str] = []

    # -- small helpers ------------------------------------------------------
    def new_label(self, stem: str) -> str:
        self.n_labels += 1
        return f"{stem}{self.n_labels}"

    def new_slot(self) -> int | None:
        addr = SLOT_BASE + 8 * self.n_slots
        if addr + 8 > SLOT_END:
            return None
        self.n_slots += 1
        return addr

    def const(self) -> int:
        c = self.c
        pick = c.randint(0, 9)
        if pick < 6:
            return c.choice(INTERESTING)
        if pick < 8:
            return c.randint(-2048, 2047)
        if pick < 9:
            return to_signed(c.randint(0, 0xFFFF_FFFF))
        return to_signed(c.randint(0, (1 << 64) - 1))

    def pick_reg(self, regs: Iterable[int]) -> int:
        return self.c.choice(sorted(regs))

    def ld(self, f: Frag, r: int, value: int) -> None:
        f.ins(f"{_LD.mnemonic} {reg(r)}, {to_signed(value)}")

    def pool_value(self, f: Frag, r: int, value: int | None = None) -> None:
        """Load ``value`` (or a random pool entry) from the constant pool: a value
        constant folding cannot see. ``value`` must be in :data:`INTERESTING`."""
        if value is None:
            index = self.c.randint(0, len(self.pool) - 1)
        else:
            index = self.pool.index(to_signed(value))
        self.ld(f, r, POOL)
        f.ins(f"{_LD64.mnemonic} {reg(r)}, {mem(r, 8 * index)}")

    def value(self, f: Frag, r: int, choices: Sequence[int] | None = None) -> None:
        """Put a constant in ``r``: an immediate LD or, as often, a pool load."""
        c = self.c
        if choices is None:
            if c.chance(0.5):
                self.pool_value(f, r)
            else:
                self.ld(f, r, self.const())
            return
        v = c.choice(choices)
        if to_signed(v) in self.pool and c.chance(0.5):
            self.pool_value(f, r, v)
        else:
            self.ld(f, r, v)

    def opaque(self, f: Frag, targets: Sequence[int], w: frozenset[int]) -> None:
        """Sometimes add a pool zero to some of ``targets`` (addresses, lengths), so
        their checks happen at run time instead of being folded."""
        spare = w - set(targets)
        if not spare or not targets or not self.c.chance(0.4):
            return
        rt = self.pick_reg(spare)
        self.pool_value(f, rt, 0)
        for t in targets:
            if self.c.chance(0.6):
                f.ins(f"ADD64 {reg(t)}, {reg(t)}, {reg(rt)}")

    # -- addresses ------------------------------------------------------------
    def readable_addr(self, size: int) -> int:
        c = self.c
        region = c.randint(0, 5)
        if region == 0:
            return c.randint(0, LOW_END - size)
        if region == 1:
            return c.randint(SCRATCH, SCRATCH + SCRATCH_SIZE - size)
        if region == 2 and self.has_ro:
            return c.randint(RO_BASE, RO_BASE + RO_SIZE - size)
        if region == 3:
            return self.mem_size - size - c.randint(0, 16)
        if region == 4:
            return c.randint(SLOT_BASE, SLOT_END - size)
        return c.randint(0, self.mem_size - size)

    def writable_addr(self, size: int) -> int:
        c = self.c
        region = c.randint(0, 4)
        if region == 0:
            return c.randint(0, LOW_END - size)
        if region == 1:
            return c.randint(SCRATCH, SCRATCH + SCRATCH_SIZE - size)
        if region == 2:
            return self.mem_size - size - c.choice((0, 0, c.randint(0, 16)))
        if region == 3:  # right next to the read-only segment, not touching it
            return c.choice((RO_BASE - size, RO_BASE + RO_SIZE))
        return c.randint(MID_BASE, self.mem_size - size)

    def oob_addr(self, size: int) -> int:
        """An address where a ``size``-byte access is out of bounds."""
        c = self.c
        pick = c.randint(0, 3)
        if pick == 0:
            return self.mem_size - size + c.choice((1, 1, c.randint(1, size)))  # often one byte over
        if pick == 1:
            return self.mem_size + c.randint(0, 4096)
        if pick == 2:
            return (1 << 64) - c.randint(1, 16)
        return c.randint(1 << 32, 1 << 62)

    def ro_addr(self, size: int) -> int:
        """An address where a ``size``-byte write touches the read-only segment."""
        c = self.c
        return c.choice((RO_BASE - size + 1, RO_BASE + RO_SIZE - 1, c.randint(RO_BASE - size + 1, RO_BASE + RO_SIZE - 1)))

    def base_disp(self, addr: int) -> tuple[int, int]:
        """(base value, displacement) with ``base + disp == addr`` mod 2^64."""
        c = self.c
        disp = c.choice((0, 0, c.randint(-16, 16), c.randint(-2048, 2047)))
        return to_signed(addr - disp), disp

    # -- statements -------------------------------------------------------------
    def stmt_arith(self, w: frozenset[int]) -> Frag:
        c, f = self.c, Frag()
        op = c.choice(ARITH_OPS)
        d = self.pick_reg(w)
        a = c.randint(0, NUM_REGS - 1)
        b = c.randint(0, NUM_REGS - 1)
        if op.fmt is Fmt.RRR:
            if op.family is Family.DIV:
                b = self.pick_reg(w)
                if c.chance(0.15) and len(w) >= 2:  # INT_MIN / -1 of the width
                    a = self.pick_reg(w - {b})
                    self.value(f, a, (-(1 << (op.width - 1)),))
                    self.value(f, b, (-1,))
                elif c.chance(0.7):
                    self.value(f, b, SAFE_DIVISORS)
                else:
                    self.ld(f, b, self.nonzero_random())
            f.ins(f"{op.mnemonic} {reg(d)}, {reg(a)}, {reg(b)}")
        elif op.fmt is Fmt.SHIFT:
            top = op.width - 1
            count = c.choice((0, 1, top, top - 1, c.randint(0, top)))
            f.ins(f"{op.mnemonic} {reg(d)}, {reg(a)}, {count}")
        elif op.fmt in (Fmt.UNARY, Fmt.INCDEC):
            f.ins(f"{op.mnemonic} {reg(d)}")
        elif op.fmt is Fmt.MOV:
            f.ins(f"{op.mnemonic} {reg(d)}, {reg(a)}")
        elif op.fmt is Fmt.DROP:
            f.ins(f"{op.mnemonic} {reg(a)}")
        elif op.fmt is Fmt.CP:
            f.ins(f"{op.mnemonic} {reg(a)}, {reg(b)}")
        elif op.fmt is Fmt.CPI:
            f.ins(f"{op.mnemonic} {reg(a)}, {c.randint(-2048, 2047)}")
        else:  # pragma: no cover - ARITH_OPS holds only the formats above
            raise AssertionError(op)
        return f

    def nonzero_random(self) -> int:
        value = to_signed(self.c.randint(1, 0xFFFF_FFFF) | (self.c.randint(0, 0xFFFF_FFFF) << 32))
        return value if (value & 0xFFFF_FFFF) else 1

    def stmt_const(self, w: frozenset[int]) -> Frag:
        f = Frag()
        self.value(f, self.pick_reg(w))
        return f

    def stmt_load(self, w: frozenset[int], addr: int | None = None) -> Frag:
        c, f = self.c, Frag()
        op = c.choice(LOAD_OPS)
        base, disp = self.base_disp(self.readable_addr(op.width) if addr is None else addr)
        rb = self.pick_reg(w)
        rd = self.pick_reg(w)
        self.ld(f, rb, base)
        self.opaque(f, [rb], w)
        f.ins(f"{op.mnemonic} {reg(rd)}, {mem(rb, disp)}")
        return f

    def stmt_store(self, w: frozenset[int], addr: int | None = None, op: OpInfo | None = None) -> Frag:
        c, f = self.c, Frag()
        op = op or c.choice(STORE_OPS)
        base, disp = self.base_disp(self.writable_addr(op.width) if addr is None else addr)
        rb = self.pick_reg(w)
        src = c.randint(0, NUM_REGS - 1)
        self.ld(f, rb, base)
        self.opaque(f, [rb], w)
        f.ins(f"{op.mnemonic} {mem(rb, disp)}, {reg(src)}")
        return f

    def stmt_store_load(self, w: frozenset[int]) -> Frag | None:
        """A store followed by an overlapping load of another width (the load
        must see the stored bytes, little-endian)."""
        if len(w) < 2:
            return None
        c, f = self.c, Frag()
        st = c.choice(STORE_OPS)
        ld = c.choice(LOAD_OPS)
        addr = self.writable_addr(16)
        rb = self.pick_reg(w)
        self.ld(f, rb, addr)
        self.opaque(f, [rb], w)
        d1 = c.randint(0, 8 - st.width)
        d2 = c.randint(0, 8 - ld.width) if c.chance(0.8) else d1
        f.ins(f"{st.mnemonic} {mem(rb, d1)}, {reg(c.randint(0, 4))}")
        f.ins(f"{ld.mnemonic} {reg(self.pick_reg(w))}, {mem(rb, d2)}")
        return f

    def scratch_span(self, max_len: int = SCRATCH_SIZE) -> tuple[int, int]:
        c = self.c
        n = c.choice((0, 1, c.randint(0, 16), c.randint(0, max_len)))
        start = c.randint(SCRATCH, SCRATCH + SCRATCH_SIZE - n)
        return start, n

    def stmt_bulk(self, w: frozenset[int]) -> Frag | None:
        c, f = self.c, Frag()
        if c.chance(0.5):
            if not {HL, DE, BC} <= w:
                return None
            n = c.choice((0, 1, c.randint(1, 24), c.randint(0, 200)))
            src = c.randint(SCRATCH, SCRATCH + SCRATCH_SIZE - n)
            if c.chance(0.6):  # overlapping copy, either direction
                dst = min(max(SCRATCH, src + c.randint(-n - 2, n + 2)), SCRATCH + SCRATCH_SIZE - n)
            elif c.chance(0.5):
                dst = self.writable_addr(max(n, 1)) if n else 0
            else:
                dst = c.randint(SCRATCH, SCRATCH + SCRATCH_SIZE - n)
            if c.chance(0.3) and n:
                src = self.readable_addr(n) if n <= 16 else src
            if n == 0 and c.chance(0.5):  # BC = 0 is a no-op even for wild spans
                src, dst = self.oob_addr(8), self.oob_addr(8)
            self.ld(f, HL, src)
            self.ld(f, DE, dst)
            self.ld(f, BC, n)
            self.opaque(f, [HL, DE, BC], w)
            f.ins(_BULK["ldir"].mnemonic)
        else:
            if not {HL, A, BC} <= w:
                return None
            start, n = self.scratch_span()
            if c.chance(0.3):
                start = self.writable_addr(max(n, 1)) if n <= 16 else start
            self.ld(f, HL, start)
            self.ld(f, BC, n)
            self.opaque(f, [HL, BC], w - {A})
            self.ld(f, A, self.const())
            f.ins(_BULK["fill"].mnemonic)
        return f

    def len32(self, n: int) -> int:
        """A length register value whose low 32 bits are ``n`` (sometimes with junk above)."""
        return n | (self.c.randint(1, 0xFFFF) << 32) if self.c.chance(0.15) else n

    def stmt_prim(self, w: frozenset[int]) -> Frag | None:
        c, f = self.c, Frag()
        name = c.choice(("out", "out", "in", "log", "alloc", "free", "ctl", "ctl"))
        if name == "out":
            if not {HL, DE} <= w:
                return None
            n = c.randint(0, 24)
            self.ld(f, HL, c.choice((SCRATCH + c.randint(0, TEXT_BYTES - n), self.readable_addr(max(n, 1)))))
            self.ld(f, DE, self.len32(n))
        elif name == "in":
            if not {HL, DE} <= w:
                return None
            start, n = self.scratch_span(32)
            self.ld(f, HL, start)
            self.ld(f, DE, self.len32(n))
        elif name == "log":
            if not {HL, DE, BC, IX} <= w:
                return None
            n1, n2 = c.randint(0, 8), c.randint(0, 24)
            self.ld(f, HL, SCRATCH + c.randint(0, TEXT_BYTES - n1))
            self.ld(f, DE, self.len32(n1))
            self.ld(f, BC, SCRATCH + c.randint(0, TEXT_BYTES - n2))
            self.ld(f, IX, self.len32(n2))
        elif name == "alloc":
            if HL not in w:
                return None
            size = c.choice(ALLOC_SIZES)
            self.ld(f, HL, size)
            self.opaque(f, [HL], w)
            f.ins(_PRIM["alloc"].mnemonic)
            if 8 <= size <= 4096 and c.chance(0.6):
                # HL is the block or 0 (out of memory): both are safe to write 8 bytes at.
                op = c.choice(STORE_OPS)
                f.ins(f"{op.mnemonic} {mem(HL, c.randint(0, 8 - op.width))}, {reg(c.randint(0, 4))}")
            return f
        elif name == "free":
            if c.chance(0.5) and HL in w:
                self.ld(f, HL, self.const())
        else:  # ctl
            if not {HL, DE, BC, IX} <= w:
                return None
            n1 = c.randint(0, 16)
            start, cap = self.scratch_span(32)
            self.ld(f, HL, SCRATCH + c.randint(0, TEXT_BYTES - n1))
            self.ld(f, DE, self.len32(n1))
            self.ld(f, BC, start)
            self.ld(f, IX, self.len32(cap))
        if name != "free":
            self.opaque(f, [HL, DE, BC, IX] if name in ("log", "ctl") else [HL, DE], w)
        f.ins(_PRIM[name].mnemonic)
        return f

    # -- trap triggers ------------------------------------------------------------
    def trap_trigger(self, w: frozenset[int]) -> Frag | None:
        """Code that traps with ``self.trap`` when reached (needs all registers free)."""
        if w != ALL_REGS:
            return None
        c, f = self.c, Frag()
        kind = self.trap
        if kind is TrapKind.DIV0:
            op = c.choice(DIV_OPS)
            d, a, b = c.randint(0, 4), c.randint(0, 4), c.randint(0, 4)
            self.value(f, b, (0, 1 << 32, -(1 << 32)) if op.width == 32 else (0,))
            f.ins(f"{op.mnemonic} {reg(d)}, {reg(a)}, {reg(b)}")
        elif kind is TrapKind.OOB:
            f = self.oob_trigger()
        elif kind is TrapKind.WRITE_PROTECT:
            f = self.wp_trigger()
        elif kind is TrapKind.HOST:
            self.ld(f, HL, SCRATCH)
            self.ld(f, DE, c.randint(0, 8))
            self.ld(f, BC, SCRATCH + 64)
            self.ld(f, IX, 16)
            f.ins(_PRIM["ctl"].mnemonic)
        else:
            return None
        self.trap_pending = False
        f.lines.insert(0, f"    ; trap trigger: {kind.name}")
        return f

    def oob_trigger(self) -> Frag:
        c, f = self.c, Frag()
        pick = c.randint(0, 7)
        if pick == 0:
            op = c.choice(LOAD_OPS)
            base, disp = self.base_disp(self.oob_addr(op.width))
            self.ld(f, IX, base)
            self.opaque(f, [IX], ALL_REGS)
            f.ins(f"{op.mnemonic} {reg(c.randint(0, 4))}, {mem(IX, disp)}")
        elif pick == 1:
            op = c.choice(STORE_OPS)
            base, disp = self.base_disp(self.oob_addr(op.width))
            self.ld(f, IX, base)
            self.opaque(f, [IX], ALL_REGS)
            f.ins(f"{op.mnemonic} {mem(IX, disp)}, {reg(c.randint(0, 4))}")
        elif pick == 2:  # LDIR: source or destination span leaves memory
            n = c.choice((c.randint(1, 64), 1 << 40, (1 << 64) - 1))
            spans = (self.oob_addr(min(n, 64)), SCRATCH)
            src, dst = spans if c.chance(0.5) else spans[::-1]
            self.ld(f, HL, src)
            self.ld(f, DE, dst)
            self.ld(f, BC, n)
            self.opaque(f, [HL, DE, BC], ALL_REGS)
            f.ins(_BULK["ldir"].mnemonic)
        elif pick == 3:
            n = c.choice((c.randint(1, 64), (1 << 63) + 5))
            self.ld(f, HL, self.oob_addr(min(n, 64)))
            self.ld(f, BC, n)
            self.opaque(f, [HL, BC], ALL_REGS - {A})
            self.ld(f, A, 0x5A)
            f.ins(_BULK["fill"].mnemonic)
        else:  # a primitive span outside memory
            name = ("out", "in", "log", "ctl")[pick - 4]
            n = c.randint(1, 16)
            bad = self.oob_addr(n)
            self.ld(f, HL, bad)
            self.ld(f, DE, n)
            self.ld(f, BC, SCRATCH)
            self.ld(f, IX, 4)
            self.opaque(f, [HL, DE], ALL_REGS)
            f.ins(_PRIM[name].mnemonic)
        return f

    def wp_trigger(self) -> Frag:
        c, f = self.c, Frag()
        pick = c.randint(0, 4)
        if pick == 0:
            op = c.choice(STORE_OPS)
            base, disp = self.base_disp(self.ro_addr(op.width))
            self.ld(f, DE, base)
            self.opaque(f, [DE], ALL_REGS)
            f.ins(f"{op.mnemonic} {mem(DE, disp)}, {reg(c.randint(0, 4))}")
        elif pick == 1:
            n = c.randint(1, 64)
            self.ld(f, HL, SCRATCH)
            self.ld(f, DE, self.ro_addr(n))
            self.ld(f, BC, n)
            self.opaque(f, [HL, DE, BC], ALL_REGS)
            f.ins(_BULK["ldir"].mnemonic)
        elif pick == 2:
            n = c.randint(1, 64)
            self.ld(f, HL, self.ro_addr(n))
            self.ld(f, BC, n)
            self.opaque(f, [HL, BC], ALL_REGS - {A})
            self.ld(f, A, 0xEE)
            f.ins(_BULK["fill"].mnemonic)
        elif pick == 3:
            n = c.randint(1, 16)
            self.ld(f, HL, self.ro_addr(n))
            self.ld(f, DE, n)
            self.opaque(f, [HL, DE], ALL_REGS)
            f.ins(_PRIM["in"].mnemonic)
        else:
            n = c.randint(1, 16)
            self.ld(f, HL, SCRATCH)
            self.ld(f, DE, 4)
            self.ld(f, BC, self.ro_addr(n))
            self.ld(f, IX, n)
            self.opaque(f, [BC, IX], ALL_REGS)
            f.ins(_PRIM["ctl"].mnemonic)
        return f

    # -- control flow ---------------------------------------------------------------
    def stmt_if(self, w: frozenset[int], depth: int, budget: int) -> Frag:
        c, f = self.c, Frag()
        a = c.randint(0, 4)
        if c.chance(0.5):
            f.ins(f"{_CP.mnemonic} {reg(a)}, {reg(c.randint(0, 4))}")
        else:
            f.ins(f"{_CPI.mnemonic} {reg(a)}, {c.choice((0, 1, -1, 2047, -2048, c.randint(-2048, 2047)))}")
        cond = c.choice(COND_NAMES[1:]) if c.chance(0.95) else COND_NAMES[0]
        then = self.body(w, depth + 1, budget // 2)
        skip = self.new_label("skip")
        f.ins(f"{_JR.mnemonic} {cond}, {skip}")
        if cond == COND_NAMES[0]:  # always taken: the body is dead code
            f.lines.extend(then.lines)
            f.label(skip)
            return f
        if c.chance(0.4):
            other = self.body(w, depth + 1, budget // 2)
            end = self.new_label("endif")
            lo, hi = f.lo, f.hi
            f.lines.extend(then.lines)
            f.lines.append(f"    {_JR.mnemonic} {end}")
            f.label(skip)
            f.lines.extend(other.lines)
            f.label(end)
            f.lo = lo + min(then.lo + 1, other.lo)
            f.hi = hi + max(then.hi + 1, other.hi)
            return f
        lo, hi = f.lo, f.hi
        f.lines.extend(then.lines)
        f.label(skip)
        f.lo, f.hi = lo, hi + then.hi
        return f

    def stmt_loop(self, w: frozenset[int], depth: int, budget: int) -> Frag | None:
        c = self.c
        if c.chance(0.5) and len(w) >= 3:
            return self.reg_loop(w, depth, budget)
        if c.chance(0.3):
            return self.split_loop(w, depth, budget)
        return self.mem_loop(w, depth, budget)

    def split_loop(self, w: frozenset[int], depth: int, budget: int) -> Frag | None:
        """A loop with two entries (an irreducible CFG): the first pass may jump
        straight into the middle of the body. Memory counter, as :meth:`mem_loop`."""
        slot = self.new_slot()
        if slot is None or len(w) < 2:
            return None
        c, f = self.c, Frag()
        first = self.body(w, depth + 1, budget // 4)
        second = self.body(w, depth + 1, budget // 4)
        ra = self.pick_reg(w)
        rv = self.pick_reg(w - {ra})
        n = self.trips(first.hi + second.hi + 6, budget)
        top, mid = self.new_label("loop"), self.new_label("mid")
        self.ld(f, ra, slot)
        self.ld(f, rv, n)
        f.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{_CPI.mnemonic} {reg(c.randint(0, 4))}, {c.randint(-8, 8)}")
        f.ins(f"{_JR.mnemonic} {c.choice(COND_NAMES)}, {mid}")
        tail = Frag()
        self.ld(tail, ra, slot)
        tail.ins(f"{_LD64.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        tail.ins(f"{_DEC.mnemonic} {reg(rv)}")
        tail.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        tail.ins(f"{_CPI.mnemonic} {reg(rv)}, 0")
        tail.ins(f"{_JR.mnemonic} ne, {top}")
        f.label(top)
        f.lines.extend(first.lines)
        f.label(mid)
        f.lines.extend(second.lines + tail.lines)
        f.lo += n * (second.lo + tail.lo) + (n - 1) * first.lo
        f.hi += n * (first.hi + second.hi + tail.hi)
        f.stack = max(f.stack, first.stack, second.stack)
        return f

    def trips(self, per_iter: int, budget: int) -> int:
        limit = max(1, min(self.cfg.max_iters, budget // max(per_iter, 1)))
        return self.c.randint(1, limit)

    def mem_loop(self, w: frozenset[int], depth: int, budget: int) -> Frag | None:
        slot = self.new_slot()
        if slot is None or len(w) < 2:
            return None
        f = Frag()
        body = self.body(w, depth + 1, budget // 2)
        ra = self.pick_reg(w)
        rv = self.pick_reg(w - {ra})
        n = self.trips(body.hi + 6, budget)
        top = self.new_label("loop")
        self.ld(f, ra, slot)
        self.ld(f, rv, n)
        f.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.label(top)
        f.extend(body, n)
        tail = Frag()
        self.ld(tail, ra, slot)
        tail.ins(f"{_LD64.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        tail.ins(f"{_DEC.mnemonic} {reg(rv)}")
        tail.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        tail.ins(f"{_CPI.mnemonic} {reg(rv)}, 0")
        tail.ins(f"{_JR.mnemonic} ne, {top}")
        f.extend(tail, n)
        return f

    def reg_loop(self, w: frozenset[int], depth: int, budget: int) -> Frag | None:
        c, f = self.c, Frag()
        r = self.pick_reg(w)
        style = c.randint(0, 2)
        q = self.pick_reg(w - {r}) if style == 2 else None
        inner = w - {r} - ({q} if q is not None else set())
        if not inner:
            return None
        body = self.body(inner, depth + 1, budget // 2)
        n = self.trips(body.hi + 3, budget)
        top = self.new_label("rloop")
        tail = Frag()
        cond = c.choice(("lt", "ltu", "ne"))
        boundary = style != 0 and c.chance(0.3)
        if style == 0:  # count down to zero
            self.ld(f, r, n | (c.randint(0, 0xFF) << 32) if c.chance(0.2) else n)
            tail.ins(f"{_DEC.mnemonic} {reg(r)}")
            tail.ins(f"{_CPI.mnemonic} {reg(r)}, 0")
            tail.ins(f"{_JR.mnemonic} ne, {top}")
        elif style == 1:  # count up to an immediate
            imm = c.choice((0, -1, -2, 1, 2047, -2048)) if boundary else n
            # INC wraps at 2^32, so the counter meets the limit after n steps at the latest.
            self.ld(f, r, ((imm & 0xFFFF_FFFF) - n) & 0xFFFF_FFFF if boundary else 0)
            tail.ins(f"{_INC.mnemonic} {reg(r)}")
            tail.ins(f"{_CPI.mnemonic} {reg(r)}, {imm}")
            tail.ins(f"{_JR.mnemonic} {cond}, {top}")
        else:  # count up to a limit register
            assert q is not None
            limit = c.choice((0x8000_0000, 0x7FFF_FFFF, 0, 0xFFFF_FFFF, 1, c.randint(0, 0xFFFF_FFFF))) \
                if boundary else n
            start = (limit - n) & 0xFFFF_FFFF if boundary else 0
            self.ld(f, r, start | (c.randint(0, 0xFFFF) << 32) if c.chance(0.2) else start)
            self.ld(f, q, limit | (c.randint(0, 0xFFFF) << 32) if c.chance(0.2) else limit)
            tail.ins(f"{_INC.mnemonic} {reg(r)}")
            tail.ins(f"{_CP.mnemonic} {reg(r)}, {reg(q)}")
            tail.ins(f"{_JR.mnemonic} {cond}, {top}")
        f.label(top)
        f.lines.extend(body.lines + tail.lines)
        first = 1 if boundary and cond != "ne" else n  # a signed/unsigned limit may stop it early
        f.lo += first * (body.lo + tail.lo)
        f.hi += n * (body.hi + tail.hi)
        f.stack = max(f.stack, body.stack)
        return f

    def stmt_call(self, w: frozenset[int]) -> Frag | None:
        """CALL a helper function generated earlier (calls form a DAG) or the
        bounded recursive function."""
        if w != ALL_REGS:
            return None
        use_rec = self.rec is not None and self.c.chance(0.3)
        if not self.funcs and not use_rec:
            return None
        if use_rec:
            deep = not self.guaranteed and self.c.chance(0.15)
            return self.call_rec(self.c.randint(100, 2000) if deep else self.c.randint(0, 12))
        callee = self.c.choice(self.funcs)
        f = Frag()
        f.ins(f"{_CALL.mnemonic} {callee.name}")
        f.lo += callee.frag.lo
        f.hi += callee.frag.hi
        f.stack = 1 + callee.frag.stack
        return f

    def call_rec(self, depth: int) -> Frag:
        """Set the recursion counter to ``depth`` and call ``rec`` (depth+1 pushes)."""
        assert self.rec is not None
        c, f = self.c, Frag()
        ra = c.randint(0, 4)
        rv = c.choice([r for r in range(NUM_REGS) if r != ra])
        self.ld(f, ra, self.rec_slot)
        self.ld(f, rv, depth)
        f.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{_CALL.mnemonic} {self.rec.name}")
        f.lo += 8 * depth + 5
        f.hi += 8 * depth + 5
        f.stack = depth + 1
        return f

    # -- bodies ---------------------------------------------------------------------
    def statement(self, w: frozenset[int], depth: int, budget: int) -> Frag | None:
        c = self.c
        if self.trap_pending and not self.guaranteed and c.chance(0.08):
            trig = self.trap_trigger(w)
            if trig is not None:
                return trig
        kind = c.choice((
            "arith", "arith", "arith", "arith", "arith", "arith", "const", "const",
            "load", "load", "store", "store", "bulk", "prim", "if", "loop", "call", "call",
        ))
        if kind == "arith":
            return self.stmt_arith(w)
        if kind == "const":
            return self.stmt_const(w)
        if kind == "load":
            return self.stmt_load(w)
        if kind == "store":
            return self.stmt_store(w) if c.chance(0.7) else self.stmt_store_load(w)
        if kind == "bulk":
            return self.stmt_bulk(w)
        if kind == "prim":
            return self.stmt_prim(w)
        if kind == "if" and depth < self.cfg.max_depth and budget > 40:
            return self.stmt_if(w, depth, budget)
        if kind == "loop" and depth < self.cfg.max_depth and budget > 60:
            return self.stmt_loop(w, depth, budget)
        if kind == "call":
            return self.stmt_call(w)
        return None

    def body(self, w: frozenset[int], depth: int, budget: int, count: int | None = None,
             entries: bool = False) -> Frag:
        """Statements; with ``entries`` (top level of a function) sometimes an
        exported label between two of them (a second way into the function)."""
        f = Frag()
        if not w:
            return f
        n = count if count is not None else self.c.randint(1, max(1, self.cfg.max_stmts >> depth))
        for _ in range(n):
            self.maybe_entry(f, entries)
            s = self.statement(w, depth, budget - f.hi)
            if s is not None and f.hi + s.hi <= budget:
                f.extend(s)
        return f

    def maybe_entry(self, f: Frag, allowed: bool) -> None:
        if allowed and self.c.chance(self.cfg.export_rate):
            name = self.new_label("entry")
            self.entries.append(name)
            f.label(name)

    # -- whole program ------------------------------------------------------------------
    def make_rec(self) -> None:
        slot = self.new_slot()
        if slot is None:
            return
        c = self.c
        ra = c.randint(0, 4)
        rv = c.choice([r for r in range(NUM_REGS) if r != ra])
        f = Frag()
        name, done = "rec", "rec_done"
        f.label(name)
        self.ld(f, ra, slot)
        f.ins(f"{_LD64.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        f.ins(f"{_CPI.mnemonic} {reg(rv)}, 0")
        f.ins(f"{_JR.mnemonic} eq, {done}")
        f.ins(f"{_DEC.mnemonic} {reg(rv)}")
        f.ins(f"{_ST64.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{_CALL.mnemonic} {name}")
        f.label(done)
        f.ins(_RET.mnemonic)
        self.rec = _Func(name, f)
        self.rec_slot = slot

    def end_function(self, frag: Frag, callees: list[_Func]) -> None:
        """RET, or sometimes a jump into a function generated earlier (whose RET
        then returns for both)."""
        if callees and self.c.chance(self.cfg.tail_jump_rate):
            callee = self.c.choice(callees)
            frag.ins(f"{_JR.mnemonic} {callee.name}")
            frag.lo += callee.frag.lo
            frag.hi += callee.frag.hi
            frag.stack = max(frag.stack, callee.frag.stack)
        else:
            frag.ins(_RET.mnemonic)

    def build(self) -> GenProgram:
        c, cfg = self.c, self.cfg
        if self.trap is TrapKind.CALL_DEPTH or c.chance(0.3):
            self.make_rec()
        made: list[_Func] = []
        for i in reversed(range(c.randint(0, cfg.max_funcs))):
            self.funcs = list(made)  # callees: the functions generated so far
            frag = Frag()
            frag.label(f"f{i}")
            frag.extend(self.body(ALL_REGS, 1, cfg.budget // 8, entries=True))
            self.end_function(frag, made)
            made.insert(0, _Func(f"f{i}", frag))
        self.funcs = made

        main = Frag()
        main.label("main")
        if c.chance(0.8):
            for r in range(NUM_REGS):
                self.value(main, r)
        count = c.randint(1, cfg.max_stmts)
        trigger_at = c.randint(0, count) if self.trap_pending else -1
        i = 0
        while i < count or (self.static_size(main) < cfg.min_static and i < 100 * cfg.min_static):
            if i == trigger_at and self.trap_pending:
                trig = self.trap_trigger(ALL_REGS)
                if trig is not None:
                    main.extend(trig)
            self.maybe_entry(main, True)
            s = self.statement(ALL_REGS, 0, cfg.budget - main.hi)
            if s is not None and main.hi + s.hi <= cfg.budget:
                main.extend(s)
            i += 1
        if self.trap_pending:
            trig = self.trap_trigger(ALL_REGS)
            if trig is not None:
                main.extend(trig)
        if self.trap is TrapKind.CALL_DEPTH and self.rec is not None:
            self.rec_depth = c.randint(1, 12)
            main.comment(f"trap trigger: CALL_DEPTH ({self.rec_depth + 1} nested calls)")
            main.extend(self.call_rec(self.rec_depth))
        self.end_function(main, self.funcs if self.c.chance(0.5) else [])
        return self.finish(main)

    @staticmethod
    def static_size(f: Frag) -> int:
        return sum(1 for line in f.lines if line.startswith("    ") and not line.strip().startswith(";"))

    def finish(self, main: Frag) -> GenProgram:
        c, cfg = self.c, self.cfg
        lines = [f"; zjit fuzz program ({'trap:' + self.trap.name if self.trap else 'random'})"]
        exported = [fn.name for fn in self.funcs if c.chance(0.3)] + self.entries
        lines.append("    PUBLIC main")
        lines.extend(f"    PUBLIC {name}" for name in exported)
        lines.extend(main.lines)
        for fn in self.funcs:
            lines.extend(fn.frag.lines)
        if self.rec is not None:
            lines.extend(self.rec.frag.lines)
        lines.extend(self.data_lines())
        asm = "\n".join(lines) + "\n"

        fuel: int | None = None
        depth = 1024
        if self.trap is TrapKind.FUEL:
            fuel = c.randint(0, max(main.lo - 1, 0))
        elif not self.guaranteed and c.chance(cfg.fuel_rate):
            fuel = c.choice((main.hi, main.lo, c.randint(0, main.hi + 10), c.randint(0, 50)))
        if self.trap is TrapKind.CALL_DEPTH:
            depth = c.randint(0, self.rec_depth)  # the trigger needs rec_depth + 1 entries
        elif not self.guaranteed and c.chance(cfg.small_depth_rate):
            depth = max(0, main.stack - c.randint(0, 1))  # at or just under what is needed
        elif not self.guaranteed and c.chance(0.1):
            depth = 4096  # deep recursion runs without hitting the limit
        ro: tuple[SegmentDesc, ...] = ()
        if self.has_ro:
            ro = (SegmentDesc("rodata", RO_BASE, RO_SIZE, "r", c.randbytes(RO_SIZE)),)
        stdin = c.randbytes(c.randint(0, 48))
        intent = f"trap:{self.trap.name}" if self.trap else "random"
        return GenProgram(
            asm=asm, fuel=fuel, max_call_depth=depth, mem_size=self.mem_size, stdin=stdin,
            ctl=self.ctl, ro_segments=ro, intent=intent, min_cost=main.lo, max_cost=main.hi,
            call_depth_need=main.stack,
            notes=tuple(self.notes),
        )

    def data_lines(self) -> list[str]:
        c = self.c
        alphabet = b"abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789"
        text = bytes(alphabet[b % len(alphabet)] for b in c.randbytes(TEXT_BYTES))
        rest = c.randbytes(SCRATCH_SIZE - TEXT_BYTES)
        out = ["; data", f"    ORG {SCRATCH:#x}", "scratch:"]
        out.append(f'    DB "{text.decode()}"')
        for i in range(0, len(rest), 16):
            out.append("    DB " + ", ".join(str(b) for b in rest[i : i + 16]))
        out.append("pool:")
        for i in range(0, len(self.pool), 4):
            out.append("    DQ " + ", ".join(str(v) for v in self.pool[i : i + 4]))
        return out


def generate(c: Chooser, cfg: GenConfig | None = None, trap: TrapKind | None = None,
             guaranteed: bool = False) -> GenProgram:
    """One program. With ``trap`` set it carries a trigger for that trap kind;
    ``guaranteed`` makes the trigger certain to run first (see :func:`trap_program`)."""
    cfg = cfg or GenConfig()
    if trap is None and not guaranteed and c.chance(cfg.trap_rate):
        trap = c.choice(TRAP_KINDS)
    return _Builder(c, cfg, trap, guaranteed).build()


def random_program(seed: int | str, cfg: GenConfig | None = None) -> GenProgram:
    """The program for ``seed`` (same seed, same program)."""
    return generate(RandomChooser(seed), cfg)


def trap_program(c: Chooser, kind: TrapKind, cfg: GenConfig | None = None) -> GenProgram:
    """A program whose run deterministically ends with a ``kind`` trap."""
    if kind not in TRAP_KINDS:
        raise ValueError(f"trap kind {kind.name} cannot be provoked deterministically")
    return generate(c, cfg or GenConfig(max_stmts=8), trap=kind, guaranteed=True)


def long_program(seed: int | str, instructions: int = 1000) -> GenProgram:
    """A trap-free program with at least ``instructions`` instructions (compile benchmarks)."""
    cfg = GenConfig(max_stmts=8, trap_rate=0.0, fuel_rate=0.0, small_depth_rate=0.0,
                    min_static=instructions, big_rate=0.0)
    return _Builder(RandomChooser(seed), cfg, None, True).build()
