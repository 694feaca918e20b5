"""The program builder's state and helpers: labels, counter slots, constants,
the constant pool and address choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from zjit.isa import TrapKind

from .choosers import Chooser
from .fragments import (
    LD64_OP,
    LD_OP,
    Frag,
    Func,
    GenConfig,
    mem,
    reg,
)
from .layout import (
    INTERESTING,
    LOW_END,
    MEM_SIZES,
    MID_BASE,
    POOL,
    POOL_EXTRA,
    RO_BASE,
    RO_SIZE,
    SCRATCH,
    SCRATCH_SIZE,
    SLOT_BASE,
    SLOT_END,
    to_signed,
)


class BuilderBase:
    """State and helpers shared by the statement, trap and control-flow generators;
    all randomness comes from ``c``."""

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
        self.funcs: list[Func] = []
        self.rec: Func | None = None
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
        f.ins(f"{LD_OP.mnemonic} {reg(r)}, {to_signed(value)}")

    def pool_value(self, f: Frag, r: int, value: int | None = None) -> None:
        """Load ``value`` (or a random pool entry) from the constant pool: a value
        constant folding cannot see. ``value`` must be in :data:`INTERESTING`."""
        if value is None:
            index = self.c.randint(0, len(self.pool) - 1)
        else:
            index = self.pool.index(to_signed(value))
        self.ld(f, r, POOL)
        f.ins(f"{LD64_OP.mnemonic} {reg(r)}, {mem(r, 8 * index)}")

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

    # -- provided by the final builder ---------------------------------------------
    def body(self, w: frozenset[int], depth: int, budget: int, count: int | None = None,
             entries: bool = False) -> Frag:
        """Generate statements (implemented by :class:`zjit.fuzz.generators._Builder`)."""
        raise NotImplementedError
