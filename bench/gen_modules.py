"""Generated modules of realistic shape for the compile-latency bench.

:func:`bench_program` builds, deterministically from a seed and in time linear in
the size, a trap-free, terminating ZASM program of at least the requested number
of instructions: functions of 30-200 instructions each calling a few of the ones
made just before it (a DAG), ``main`` last; bodies mix 64- and 32-bit arithmetic, division
by non-zero constants, constants of every width, loads and stores of every width,
LDIR/FILL, host primitives (OUT, LOG, ALLOC, IN, CTL), ifs with else branches and
loops (register counters, or memory counters around calls). It was written when
``zjit.fuzz.generators.long_program`` took minutes for 10,000 instructions (its
generation time is linear now; the bench keeps its own programs so that its
figures stay comparable).

Memory map (``MEM_SIZE`` bytes): data segment at ``DATA`` (printable text then
random bytes), stores and bulk destinations in ``[STORE_LO, STORE_HI)``, loop
counters in 8-byte slots from ``SLOT_BASE`` (one per memory loop, never written
by anything else, so every loop terminates).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from zjit.isa import COND_NAMES, NUM_REGS, OPS, REG_NAMES, Family, Fmt, OpInfo

MEM_SIZE = 0x20000
DATA = 0x1000
DATA_SIZE = 512
TEXT_BYTES = 64
STORE_LO, STORE_HI = 0x2000, 0x8000
SLOT_BASE, SLOT_END = 0x8000, 0x10000
FUNC_BUDGET = 4_000
"""Most instructions one call of a helper function may execute."""
MAIN_BUDGET = 40_000
"""Most instructions a run of ``main`` may execute."""
FUNC_SIZES = (30, 200)
"""Instructions per function (uniform in this range, plus the last statement's overshoot)."""
MAX_OVERSHOOT = 150

ALL = frozenset(range(NUM_REGS))
HL, DE, A, BC, IX = range(NUM_REGS)
_ARITH = tuple(o for o in OPS if o.family in (Family.ALU, Family.SHIFT, Family.BITCOUNT, Family.CMPSET,
                                            Family.INCDEC, Family.MOV, Family.CP, Family.NOP))
_DIVS = tuple(o for o in OPS if o.family is Family.DIV)
_LOADS = tuple(o for o in OPS if o.family is Family.LOAD)
_STORES = tuple(o for o in OPS if o.family is Family.STORE)
_KINDS = ("arith",) * 7 + ("div", "const", "const", "load", "load", "store", "store", "bulk",
                           "prim", "if", "if", "loop", "call", "call")


@dataclass(frozen=True, slots=True)
class BenchProgram:
    """Assembly text, its memory size and the number of instruction lines."""

    asm: str
    mem_size: int
    instructions: int


@dataclass(slots=True)
class _Code:
    """Generated lines, static instruction count, code words, most instructions a run executes."""

    lines: list[str]
    size: int = 0
    words: int = 0
    cost: int = 0

    def ins(self, text: str, cost: int = 1, words: int = 1) -> None:
        self.lines.append("    " + text)
        self.size += 1
        self.words += words
        self.cost += cost

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def add(self, other: _Code, times: int = 1) -> None:
        self.lines.extend(other.lines)
        self.size += other.size
        self.words += other.words
        self.cost += other.cost * times


def _r(i: int) -> str:
    return REG_NAMES[i]


def _ld_words(value: int) -> int:
    """Code words of ``LD r, value`` (the assembler's shortest form)."""
    return 1 if -2046 <= value <= 2047 else 2 if -(1 << 31) <= value < (1 << 31) else 3


def _fix_calls(code: _Code, start: int, funcs: list[tuple[str, int, int]]) -> None:
    """Retarget the rare CALL that ended up beyond CALL's reach (a long last
    statement) to the nearest function in reach, or drop it. Calls still only go
    to earlier functions, so runs still terminate."""
    first_word = {name: word for name, _, word in funcs}
    word = start
    for i, line in enumerate(code.lines):
        text = line.strip()
        if not line.startswith("    "):
            continue
        if text.startswith("CALL ") and word - first_word[text[5:]] > 2047:
            reachable = [name for name, _, w in funcs if word - w <= 2047]
            code.lines[i] = f"    CALL {reachable[0]}" if reachable else "    DROP HL"
        word += _ld_words(int(text.split(",")[1])) if text.startswith("LD ") else 1


class _Gen:
    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.labels = 0
        self.slot = SLOT_BASE
        self.funcs: list[tuple[str, int, int]] = []  # (name, cost, first word) of the helpers so far
        self.called: set[str] = set()
        self.reach = 0  # the lowest first word a CALL in the function being made may target

    def label(self, stem: str) -> str:
        self.labels += 1
        return f"{stem}{self.labels}"

    def pick(self, w: frozenset[int]) -> int:
        return self.rng.choice(sorted(w))

    def ld(self, c: _Code, r: int, value: int) -> None:
        c.ins(f"LD {_r(r)}, {value}", words=_ld_words(value))

    def const(self) -> int:
        rng = self.rng
        kind = rng.randint(0, 3)
        if kind == 0:
            return rng.randint(-2046, 2047)
        if kind == 1:
            return rng.randint(-(1 << 31), (1 << 31) - 1)
        if kind == 2:
            return rng.randint(-(1 << 63), (1 << 63) - 1)
        return rng.choice((0, 1, -1, 0xFF, 0xFFFF_FFFF, 1 << 32, -(1 << 63)))

    # -- statements ---------------------------------------------------------------
    def stmt(self, w: frozenset[int], depth: int, budget: int) -> _Code | None:
        kind = self.rng.choice(_KINDS)
        if kind == "if" and depth < 3:
            return self.stmt_if(w, depth, budget)
        if kind == "loop" and depth < 3 and budget > 200:
            return self.stmt_loop(w, depth, budget)
        if kind == "call":
            return self.stmt_call(w, budget)
        maker = {"arith": self.stmt_arith, "div": self.stmt_div, "const": self.stmt_const,
                 "load": lambda w: self.stmt_access(w, False), "store": lambda w: self.stmt_access(w, True),
                 "bulk": self.stmt_bulk, "prim": self.stmt_prim}.get(kind)
        return maker(w) if maker is not None else None

    def stmt_arith(self, w: frozenset[int]) -> _Code:
        rng, c = self.rng, _Code([])
        op: OpInfo = rng.choice(_ARITH)
        d, a, b = self.pick(w), rng.randrange(NUM_REGS), rng.randrange(NUM_REGS)
        if op.fmt is Fmt.RRR:
            c.ins(f"{op.mnemonic} {_r(d)}, {_r(a)}, {_r(b)}")
        elif op.fmt is Fmt.SHIFT:
            c.ins(f"{op.mnemonic} {_r(d)}, {_r(a)}, {rng.randrange(op.width)}")
        elif op.fmt in (Fmt.UNARY, Fmt.INCDEC):
            c.ins(f"{op.mnemonic} {_r(d)}")
        elif op.fmt is Fmt.MOV:
            c.ins(f"{op.mnemonic} {_r(d)}, {_r(a)}")
        elif op.fmt is Fmt.DROP:
            c.ins(f"{op.mnemonic} {_r(a)}")
        elif op.fmt is Fmt.CP:
            c.ins(f"{op.mnemonic} {_r(a)}, {_r(b)}")
        else:
            c.ins(f"{op.mnemonic} {_r(a)}, {rng.randint(-2048, 2047)}")
        return c

    def stmt_div(self, w: frozenset[int]) -> _Code | None:
        if len(w) < 2:
            return None
        rng, c = self.rng, _Code([])
        op: OpInfo = rng.choice(_DIVS)
        b = self.pick(w)
        divisor = rng.choice((rng.randint(1, 1000), rng.randint(1, 0xFFFF_FFFF), -1, 7))
        self.ld(c, b, divisor)
        c.ins(f"{op.mnemonic} {_r(self.pick(w))}, {_r(rng.randrange(NUM_REGS))}, {_r(b)}")
        return c

    def stmt_const(self, w: frozenset[int]) -> _Code:
        c = _Code([])
        self.ld(c, self.pick(w), self.const())
        return c

    def stmt_access(self, w: frozenset[int], store: bool) -> _Code:
        """A load (from data or the store area) or a store (to the store area)."""
        rng, c = self.rng, _Code([])
        op: OpInfo = rng.choice(_STORES if store else _LOADS)
        rb = self.pick(w)
        disp = rng.choice((0, 0, rng.randint(-16, 16)))
        self.ld(c, rb, rng.randint((STORE_LO if store else DATA) + 16, STORE_HI - 32))
        if store:
            c.ins(f"{op.mnemonic} ({_r(rb)}{disp:+d}), {_r(rng.randrange(NUM_REGS))}")
        else:
            c.ins(f"{op.mnemonic} {_r(self.pick(w))}, ({_r(rb)}{disp:+d})")
        return c

    def stmt_bulk(self, w: frozenset[int]) -> _Code | None:
        rng, c = self.rng, _Code([])
        n = rng.randint(0, 64)
        if rng.random() < 0.5:
            if not {HL, DE, BC} <= w:
                return None
            self.ld(c, HL, rng.randint(DATA, STORE_HI - 64))
            self.ld(c, DE, rng.randint(STORE_LO, STORE_HI - 64))
            self.ld(c, BC, n)
            c.ins("LDIR")
        else:
            if not {HL, BC} <= w:
                return None
            self.ld(c, HL, rng.randint(STORE_LO, STORE_HI - 64))
            self.ld(c, BC, n)
            c.ins("FILL")
        return c

    def stmt_prim(self, w: frozenset[int]) -> _Code | None:
        rng, c = self.rng, _Code([])
        which = rng.choice(("out", "out", "out", "alloc", "alloc", "log", "in", "ctl", "free"))
        need = {"out": {HL, DE}, "alloc": {HL}, "free": set(), "in": {HL, DE},
                "log": {HL, DE, BC, IX}, "ctl": {HL, DE, BC, IX}}[which]
        if not need <= w:
            return None
        if which in ("out", "log", "ctl"):
            self.ld(c, HL, DATA + rng.randint(0, TEXT_BYTES - 16))
            self.ld(c, DE, rng.randint(0, 16))
        if which in ("log", "ctl"):
            self.ld(c, BC, rng.randint(STORE_LO, STORE_HI - 64) if which == "ctl" else DATA)
            self.ld(c, IX, rng.randint(0, 32))
        if which == "in":
            self.ld(c, HL, rng.randint(STORE_LO, STORE_HI - 64))
            self.ld(c, DE, rng.randint(0, 32))
        if which == "alloc":
            self.ld(c, HL, rng.choice((0, 8, 24, 100, 4096, 1 << 40)))
        c.ins(which.upper())
        return c

    def stmt_if(self, w: frozenset[int], depth: int, budget: int) -> _Code:
        rng, c = self.rng, _Code([])
        a = rng.randrange(NUM_REGS)
        if rng.random() < 0.5:
            c.ins(f"CP {_r(a)}, {_r(rng.randrange(NUM_REGS))}")
        else:
            c.ins(f"CPI {_r(a)}, {rng.randint(-2048, 2047)}")
        skip = self.label("skip")
        c.ins(f"JR {rng.choice(COND_NAMES[1:])}, {skip}")
        then = self.body(w, depth + 1, budget // 2, rng.randint(1, 5))
        if rng.random() < 0.4:
            other = self.body(w, depth + 1, budget // 2, rng.randint(1, 5))
            end = self.label("endif")
            c.add(then)
            c.ins(f"JR {end}")
            c.label(skip)
            c.add(other)
            c.label(end)
        else:
            c.add(then)
            c.label(skip)
        return c

    def stmt_loop(self, w: frozenset[int], depth: int, budget: int) -> _Code | None:
        rng, c = self.rng, _Code([])
        top = self.label("loop")
        if rng.random() < 0.5 and len(w) >= 3:  # register counter: the body never writes it
            r = self.pick(w)
            body = self.body(w - {r}, depth + 1, budget // 4, rng.randint(2, 8))
            trips = max(1, min(rng.randint(1, 16), budget // max(1, body.cost + 3)))
            self.ld(c, r, trips)
            c.label(top)
            c.add(body, trips)
            c.ins(f"DEC {_r(r)}", trips)
            c.ins(f"CPI {_r(r)}, 0", trips)
            c.ins(f"JR ne, {top}", trips)
            return c
        if self.slot + 8 > SLOT_END or len(w) < 2:
            return None
        slot, self.slot = self.slot, self.slot + 8
        body = self.body(w, depth + 1, budget // 4, rng.randint(2, 8))
        trips = max(1, min(rng.randint(1, 16), budget // max(1, body.cost + 6)))
        ra = self.pick(w)
        rv = self.pick(w - {ra})
        self.ld(c, ra, slot)
        self.ld(c, rv, trips)
        c.ins(f"ST64 ({_r(ra)}), {_r(rv)}")
        c.label(top)
        c.add(body, trips)
        for text in (f"LD {_r(ra)}, {slot}", f"LD64 {_r(rv)}, ({_r(ra)})", f"DEC {_r(rv)}",
                     f"ST64 ({_r(ra)}), {_r(rv)}", f"CPI {_r(rv)}, 0", f"JR ne, {top}"):
            c.ins(text, trips)
        return c

    def stmt_call(self, w: frozenset[int], budget: int) -> _Code | None:
        near = [f for f in self.funcs[-8:] if f[2] >= self.reach and f[1] + 1 <= budget]
        if w != ALL or not near:
            return None
        name, cost, _ = self.rng.choice(near)
        self.called.add(name)
        c = _Code([])
        c.ins(f"CALL {name}", cost + 1)
        return c

    def body(self, w: frozenset[int], depth: int, budget: int, count: int) -> _Code:
        c = _Code([])
        for _ in range(count):
            s = self.stmt(w, depth, budget - c.cost)
            if s is not None and c.cost + s.cost <= budget:
                c.add(s)
        return c

    def function(self, name: str, size: int, budget: int, start: int) -> _Code:
        """A function of about ``size`` instructions whose code starts at word ``start``."""
        c = _Code([])
        c.label(name)
        # CALL reaches 2047 words back; a function stays below 3 words per instruction
        # and overshoots its size by less than MAX_OVERSHOOT instructions.
        self.reach = start + 3 * (size + MAX_OVERSHOOT) - 2047
        while c.size < size:
            s = self.stmt(ALL, 0, budget - c.cost)
            if s is not None and c.cost + s.cost <= budget:
                c.add(s)
            elif c.cost >= budget:  # out of budget: fill with straight-line code
                c.add(self.stmt_arith(ALL))
        c.ins("RET")
        return c

    def data(self) -> list[str]:
        rng = self.rng
        alphabet = b"abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789"
        text = bytes(alphabet[rng.randrange(len(alphabet))] for _ in range(TEXT_BYTES))
        rest = bytes(rng.randrange(256) for _ in range(DATA_SIZE - TEXT_BYTES))
        out = [f"    ORG {DATA:#x}", f'data:   DB "{text.decode()}"']
        out += ["    DB " + ", ".join(str(b) for b in rest[i : i + 16]) for i in range(0, len(rest), 16)]
        return out


def bench_program(seed: str, instructions: int) -> BenchProgram:
    """A program of at least ``instructions`` instructions (same seed, same text).

    Functions are laid out in the order they are made, ``main`` last; a function
    calls only the few made just before it (CALL's reach is 2047 words). Helpers
    no later function calls are exported, so every function is reachable from a
    root and compiled."""
    g = _Gen(f"{seed}:{instructions}")
    lines = []
    total = words = 0
    while True:
        size = g.rng.randint(*FUNC_SIZES)
        last = total + size >= instructions
        name = "main" if last else f"f{len(g.funcs)}"
        code = g.function(name, size, MAIN_BUDGET if last else FUNC_BUDGET, words)
        _fix_calls(code, words, g.funcs)
        lines.extend(code.lines)
        total += code.size
        if last:
            break
        g.funcs.append((name, code.cost, words))
        words += code.words
    exported = [name for name, _, _ in g.funcs if name not in g.called or g.rng.random() < 0.05]
    head = ["    PUBLIC main", *(f"    PUBLIC {n}" for n in exported)]
    return BenchProgram("\n".join(head + lines + g.data()) + "\n", MEM_SIZE, total)
