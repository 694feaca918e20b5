"""Trap triggers: code that deterministically traps with a chosen kind."""

from __future__ import annotations

from zjit.isa import TrapKind

from .fragments import (
    ALL_REGS,
    BC,
    BULK_BY_NAME,
    DE,
    DIV_OPS,
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
    SCRATCH,
)


class TrapTriggers(BuilderBase):
    """Code that traps OOB, DIV0, WRITE_PROTECT or HOST when reached."""

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
            f.ins(PRIM_BY_NAME["ctl"].mnemonic)
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
            f.ins(BULK_BY_NAME["ldir"].mnemonic)
        elif pick == 3:
            n = c.choice((c.randint(1, 64), (1 << 63) + 5))
            self.ld(f, HL, self.oob_addr(min(n, 64)))
            self.ld(f, BC, n)
            self.opaque(f, [HL, BC], ALL_REGS - {A})
            self.ld(f, A, 0x5A)
            f.ins(BULK_BY_NAME["fill"].mnemonic)
        else:  # a primitive span outside memory
            name = ("out", "in", "log", "ctl")[pick - 4]
            n = c.randint(1, 16)
            bad = self.oob_addr(n)
            self.ld(f, HL, bad)
            self.ld(f, DE, n)
            self.ld(f, BC, SCRATCH)
            self.ld(f, IX, 4)
            self.opaque(f, [HL, DE], ALL_REGS)
            f.ins(PRIM_BY_NAME[name].mnemonic)
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
            f.ins(BULK_BY_NAME["ldir"].mnemonic)
        elif pick == 2:
            n = c.randint(1, 64)
            self.ld(f, HL, self.ro_addr(n))
            self.ld(f, BC, n)
            self.opaque(f, [HL, BC], ALL_REGS - {A})
            self.ld(f, A, 0xEE)
            f.ins(BULK_BY_NAME["fill"].mnemonic)
        elif pick == 3:
            n = c.randint(1, 16)
            self.ld(f, HL, self.ro_addr(n))
            self.ld(f, DE, n)
            self.opaque(f, [HL, DE], ALL_REGS)
            f.ins(PRIM_BY_NAME["in"].mnemonic)
        else:
            n = c.randint(1, 16)
            self.ld(f, HL, SCRATCH)
            self.ld(f, DE, 4)
            self.ld(f, BC, self.ro_addr(n))
            self.ld(f, IX, n)
            self.opaque(f, [BC, IX], ALL_REGS)
            f.ins(PRIM_BY_NAME["ctl"].mnemonic)
        return f
