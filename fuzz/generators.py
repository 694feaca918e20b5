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

import hashlib

from zjit.image import SegmentDesc
from zjit.isa import NUM_REGS, TrapKind

from .choosers import Chooser, RandomChooser
from .fragments import (
    ALL_REGS,
    CALL_OP,
    CPI_OP,
    DEC_OP,
    JR_OP,
    LD64_OP,
    RET_OP,
    ST64_OP,
    Frag,
    Func,
    GenConfig,
    mem,
    reg,
)
from .gen_base import BuilderBase
from .gen_control import ControlFlow
from .gen_statements import DataStatements
from .gen_traps import TrapTriggers
from .layout import (
    RO_BASE,
    RO_SIZE,
    SCRATCH,
    SCRATCH_SIZE,
    TEXT_BYTES,
)
from .program import GenProgram

__all__ = ["TRAP_KINDS", "GenConfig", "generate", "long_program", "random_program", "trap_program"]

TRAP_KINDS: tuple[TrapKind, ...] = (
    TrapKind.FUEL, TrapKind.OOB, TrapKind.DIV0, TrapKind.CALL_DEPTH, TrapKind.WRITE_PROTECT,
    TrapKind.HOST,
)
"""Trap kinds a generated program can reach deterministically (TIMEOUT is wall-clock)."""
CHUNK_INSTRUCTIONS = 600
"""Programs asked for more than twice this many instructions (:func:`long_program`)
build ``main`` in chunks of about this many, each followed by its own helper
functions, so that every CALL and JR stays in range."""
LONG_BUDGET_PER_INSTRUCTION = 10
"""Run-time budget of :func:`long_program` per requested instruction (a trap-free
run executes about three instructions per static one); below 2,000 instructions
the default budget applies."""


class _Builder(DataStatements, TrapTriggers, ControlFlow, BuilderBase):
    """Builds one program; all randomness comes from ``c``."""

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
        f.ins(f"{LD64_OP.mnemonic} {reg(rv)}, {mem(ra, 0)}")
        f.ins(f"{CPI_OP.mnemonic} {reg(rv)}, 0")
        f.ins(f"{JR_OP.mnemonic} eq, {done}")
        f.ins(f"{DEC_OP.mnemonic} {reg(rv)}")
        f.ins(f"{ST64_OP.mnemonic} {mem(ra, 0)}, {reg(rv)}")
        f.ins(f"{CALL_OP.mnemonic} {name}")
        f.label(done)
        f.ins(RET_OP.mnemonic)
        self.rec = Func(name, f)
        self.rec_slot = slot

    def end_function(self, frag: Frag, callees: list[Func]) -> None:
        """RET, or sometimes a jump into a function generated earlier (whose RET
        then returns for both)."""
        if callees and self.c.chance(self.cfg.tail_jump_rate):
            callee = self.c.choice(callees)
            frag.ins(f"{JR_OP.mnemonic} {callee.name}")
            frag.lo += callee.frag.lo
            frag.hi += callee.frag.hi
            frag.stack = max(frag.stack, callee.frag.stack)
        else:
            frag.ins(RET_OP.mnemonic)

    def make_funcs(self, prefix: str) -> list[Func]:
        """Up to ``max_funcs`` helper functions ``<prefix><i>``, each calling only
        those made before it (a DAG)."""
        c, cfg = self.c, self.cfg
        made: list[Func] = []
        for i in reversed(range(c.randint(0, cfg.max_funcs))):
            self.funcs = list(made)  # callees: the functions generated so far
            frag = Frag()
            frag.label(f"{prefix}{i}")
            frag.extend(self.body(ALL_REGS, 1, cfg.budget // 8, entries=True))
            self.end_function(frag, made)
            made.insert(0, Func(f"{prefix}{i}", frag))
        return made

    def next_chunk(self, main: Frag) -> None:
        """End a chunk of a long ``main``: jump over the chunk's helper functions,
        placed here, and make new ones for the next chunk. CALL and JR reach
        2,047 words, so helpers must stay near their callers."""
        label = self.new_label("chunk")
        main.ins(f"{JR_OP.mnemonic} {label}")
        for fn in self.funcs:
            main.lines.extend(fn.frag.lines)
        main.label(label)
        self.funcs = self.make_funcs(f"{label}_f")

    def build(self) -> GenProgram:
        c, cfg = self.c, self.cfg
        chunked = cfg.min_static > 2 * CHUNK_INSTRUCTIONS  # long programs (see next_chunk)
        if not chunked and (self.trap is TrapKind.CALL_DEPTH or c.chance(0.3)):
            self.make_rec()  # one far-away function: not in chunked programs
        self.funcs = self.make_funcs("f")

        main = Frag()
        main.label("main")
        if c.chance(0.8):
            for r in range(NUM_REGS):
                self.value(main, r)
        count = c.randint(1, cfg.max_stmts)
        trigger_at = c.randint(0, count) if self.trap_pending else -1
        i = 0
        size = chunk_start = self.static_size(main)  # kept up to date: linear in the size
        while i < count or (size < cfg.min_static and i < 100 * cfg.min_static):
            if chunked and size - chunk_start >= CHUNK_INSTRUCTIONS:
                self.next_chunk(main)
                size += 1
                chunk_start = size
            if i == trigger_at and self.trap_pending:
                trig = self.trap_trigger(ALL_REGS)
                if trig is not None:
                    main.extend(trig)
                    size += self.static_size(trig)
            self.maybe_entry(main, True)
            s = self.statement(ALL_REGS, 0, cfg.budget - main.hi)
            if s is not None and main.hi + s.hi <= cfg.budget:
                main.extend(s)
                size += self.static_size(s)
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
        """Instruction lines of ``f`` (labels and comments left out)."""
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
            call_depth_need=main.stack, max_output_bytes=None if self.guaranteed else output_limit(asm),
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
    """A trap-free program with at least ``instructions`` instructions (compile
    benchmarks); time and size grow linearly with ``instructions``."""
    budget = max(GenConfig.budget, LONG_BUDGET_PER_INSTRUCTION * instructions)
    cfg = GenConfig(max_stmts=8, trap_rate=0.0, fuel_rate=0.0, small_depth_rate=0.0,
                    min_static=instructions, big_rate=0.0, budget=budget)
    return _Builder(RandomChooser(seed), cfg, None, True).build()


OUTPUT_LIMIT_RATE = 8
"""One generated program in this many (not guaranteed traps) runs under a small
``max_output_bytes`` (issue 13)."""


def output_limit(asm: str) -> int | None:
    """A small output limit (0 ..= 15 bytes) for about one program in
    :data:`OUTPUT_LIMIT_RATE`, else None. Derived from the program text, so the
    generator's random stream (and every seed's programs) stay as they were."""
    h = hashlib.sha256(asm.encode()).digest()
    return h[1] % 16 if h[0] % OUTPUT_LIMIT_RATE == 0 else None
