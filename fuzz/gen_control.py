"""Control flow: ifs, loops (register, memory, two-entry), calls and recursion,
all bounded so every program terminates."""

from __future__ import annotations

from zjit.isa import COND_NAMES, NUM_REGS

from .fragments import (
    ALL_REGS,
    CALL_OP,
    CP_OP,
    CPI_OP,
    DEC_OP,
    INC_OP,
    JR_OP,
    LD64_OP,
    ST64_OP,
    Frag,
    mem,
    reg,
)
from .gen_base import BuilderBase


class ControlFlow(BuilderBase):
    """Branches, loops and calls."""

    # -- control flow ---------------------------------------------------------------
    def stmt_if(self, w: frozenset[int], depth: int, budget: int) -> Frag:
        c, f = self.c, Frag()
        a = c.randint(0, 4)
        if c.chance(0.5):
            f.ins(f"{CP_OP.mnemonic} {reg(a)}, {reg(c.randint(0, 4))}")
        else:
            f.ins(f"{CPI_OP.mnemonic} {reg(a)}, {c.choice((0, 1, -1, 2047, -2048, c.randint(-2048, 2047)))}")
        cond = c.choice(COND_NAMES[1:]) if c.chance(0.95) else COND_NAMES[0]
        then = self.body(w, depth + 1, budget // 2)
        skip = self.new_label("skip")
        f.ins(f"{JR_OP.mnemonic} {cond}, {skip}")
        if cond == COND_NAMES[0]:  # always taken: the body is dead code
            f.lines.extend(then.lines)
            f.label(skip)
            return f
        if c.chance(0.4):
            other = self.body(w, depth + 1, budget // 2)
            end = self.new_label("endif")
            lo, hi = f.lo, f.hi
            f.lines.extend(then.lines)
            f.lines.append(f"    {JR_OP.mnemonic} {end}")
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
        f.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{CPI_OP.mnemonic} {reg(c.randint(0, 4))}, {c.randint(-8, 8)}")
        f.ins(f"{JR_OP.mnemonic} {c.choice(COND_NAMES)}, {mid}")
        tail = Frag()
        self.ld(tail, ra, slot)
        tail.ins(f"{LD64_OP.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        tail.ins(f"{DEC_OP.mnemonic} {reg(rv)}")
        tail.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        tail.ins(f"{CPI_OP.mnemonic} {reg(rv)}, 0")
        tail.ins(f"{JR_OP.mnemonic} ne, {top}")
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
        f.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.label(top)
        f.extend(body, n)
        tail = Frag()
        self.ld(tail, ra, slot)
        tail.ins(f"{LD64_OP.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        tail.ins(f"{DEC_OP.mnemonic} {reg(rv)}")
        tail.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        tail.ins(f"{CPI_OP.mnemonic} {reg(rv)}, 0")
        tail.ins(f"{JR_OP.mnemonic} ne, {top}")
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
            tail.ins(f"{DEC_OP.mnemonic} {reg(r)}")
            tail.ins(f"{CPI_OP.mnemonic} {reg(r)}, 0")
            tail.ins(f"{JR_OP.mnemonic} ne, {top}")
        elif style == 1:  # count up to an immediate
            imm = c.choice((0, -1, -2, 1, 2047, -2048)) if boundary else n
            # INC wraps at 2^32, so the counter meets the limit after n steps at the latest.
            self.ld(f, r, ((imm & 0xFFFF_FFFF) - n) & 0xFFFF_FFFF if boundary else 0)
            tail.ins(f"{INC_OP.mnemonic} {reg(r)}")
            tail.ins(f"{CPI_OP.mnemonic} {reg(r)}, {imm}")
            tail.ins(f"{JR_OP.mnemonic} {cond}, {top}")
        else:  # count up to a limit register
            assert q is not None
            limit = c.choice((0x8000_0000, 0x7FFF_FFFF, 0, 0xFFFF_FFFF, 1, c.randint(0, 0xFFFF_FFFF))) \
                if boundary else n
            start = (limit - n) & 0xFFFF_FFFF if boundary else 0
            self.ld(f, r, start | (c.randint(0, 0xFFFF) << 32) if c.chance(0.2) else start)
            self.ld(f, q, limit | (c.randint(0, 0xFFFF) << 32) if c.chance(0.2) else limit)
            tail.ins(f"{INC_OP.mnemonic} {reg(r)}")
            tail.ins(f"{CP_OP.mnemonic} {reg(r)}, {reg(q)}")
            tail.ins(f"{JR_OP.mnemonic} {cond}, {top}")
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
        f.ins(f"{CALL_OP.mnemonic} {callee.name}")
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
        f.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{CALL_OP.mnemonic} {self.rec.name}")
        f.lo += 8 * depth + 5
        f.hi += 8 * depth + 5
        f.stack = depth + 1
        return f
