"""Straight-line statements: arithmetic, constants, loads and stores, LDIR/FILL
and host primitives (all trap-free by construction)."""

from __future__ import annotations

from zjit.isa import NUM_REGS, Family, Fmt, OpInfo

from .fragments import (
    ARITH_OPS,
    BC,
    BULK_BY_NAME,
    DE,
    HL,
    IX,
    LOAD_OPS,
    PRIM_BY_NAME,
    STORE_OPS,
    A,
    Frag,
    mem,
    reg,
)
from .gen_base import BuilderBase
from .layout import (
    ALLOC_SIZES,
    SAFE_DIVISORS,
    SCRATCH,
    SCRATCH_SIZE,
    TEXT_BYTES,
    to_signed,
)


class DataStatements(BuilderBase):
    """Statements that compute and move data."""

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
            f.ins(BULK_BY_NAME["ldir"].mnemonic)
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
            f.ins(BULK_BY_NAME["fill"].mnemonic)
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
            f.ins(PRIM_BY_NAME["alloc"].mnemonic)
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
        f.ins(PRIM_BY_NAME[name].mnemonic)
        return f
