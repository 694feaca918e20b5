"""Induction variables, trip counts and access ranges of innermost loops (SSA IR).

For an innermost natural loop with one latch whose conditional JR is the exit
test (a bottom-tested loop; the lifter rotates top-tested ones first,
:mod:`.layout`), :func:`analyse_loop` finds what a guard can check at run time
once per chunk of iterations instead of at every access (:mod:`.loopplan`):

* **induction variables**: registers whose header phi gets, from the latch,
  the phi plus a constant or plus a loop-invariant register (``ADD64``,
  ``SUB64`` by a constant; 32-bit ``INC``/``DEC``/``ADD``/``SUB`` too, exact
  while their results stay below 2**32, which the guard checks when it relies
  on them);
* every value in the loop that is such a variable plus invariant registers and
  a constant, as a :class:`~.loopplan.Linear` function of the iteration;
* the **exit test** ``CP``/``CPI`` + conditional ``JR`` at the latch comparing
  an induction value with an invariant one, normalised so the guard can count
  the iterations left (:class:`~.loopplan.ExitTest`): unsigned or signed
  less-than(-or-equal) on an increasing value, greater-than(-or-equal) on a
  decreasing one, not-equal with an odd constant step;
* the **loads and stores** whose address is such a value: one range check per
  base covers all of them for the whole chunk.

Loops with a CALL are left alone (a call hands back new values of every
register). The guard's checks only need to be *sufficient*: when one fails the
checked loop runs, which traps exactly where the interpreter does.
"""

from __future__ import annotations

from zjit.isa import MASK32, NUM_REGS, Family, sext

from .ir import Branch, Call, Const, Inst, IRBlock, IRFunction, Operand, Value
from .loopplan import U32, ExitTest, Linear, LoopPlan, RangeCheck, Step
from .loops import NaturalLoop, function_graph, longest_path

POLL_BUDGET = 16384
"""Guest instructions a versioned loop's fast copy runs at most between two
interrupt polls (a chunk is at most ``POLL_BUDGET // max_cost`` iterations)."""
MAX_BODY_COST = 1000
"""Loops with more guest instructions than this are not versioned (the copy
would cost more compile time than the checks cost at run time)."""
UNROLL_MAX_COST = 8
"""Fast copies of one block of at most this many guest instructions are unrolled
:data:`UNROLL` times (the loop overhead and the register copies between
iterations go; measured in docs/jit.md: fib_iter, sieve, memcopy gain 20-40%,
while longer bodies and bodies with branches got slower)."""
UNROLL = 4

# Conditions of JR (isa.md 2.2): 1 eq, 2 ne, 3 slt, 4 sle, 5 sgt, 6 sge, 7 ult, 8 ule, 9 ugt, 10 uge.
_NEGATE = {1: 2, 2: 1, 3: 6, 4: 5, 5: 4, 6: 3, 7: 10, 8: 9, 9: 8, 10: 7}
_SWAP = {1: 1, 2: 2, 3: 5, 4: 6, 5: 3, 6: 4, 7: 9, 8: 10, 9: 7, 10: 8}


class _Eval:
    """Linear forms of the values of one loop, given a set of induction variables."""

    def __init__(self, fn: IRFunction, loop: NaturalLoop, ivs: set[int]) -> None:
        self.loop = loop
        self.header = fn.blocks[loop.header]
        self.ivs = ivs
        self.phi_var = {p.dest.id: p.var for p in self.header.phis}
        self.inv_var: dict[int, int] = {}
        for v, x in enumerate(self.header.entry_state[:NUM_REGS]):
            if type(x) is Value and x.id not in self.phi_var:
                self.inv_var.setdefault(x.id, v)
        self.lin: dict[int, Linear | None] = {}
        self.own_pre: dict[int, Linear] = {}
        """pc of a 32-bit operation -> its result (whose ``pre`` lists what must
        stay below 2**32 for it to be exact, itself included)."""
        for key in fn.blocks:
            if key in loop.body:
                b = fn.blocks[key]
                for phi in b.phis:
                    if key != loop.header:
                        self.lin[phi.dest.id] = None
                for ins in b.insts:
                    self.inst(ins)

    def of(self, x: Operand) -> Linear | None:
        if type(x) is Const:
            return Linear(sext(x.value, 64 if x.ty == "i64" else 32))
        assert isinstance(x, Value)
        var = self.phi_var.get(x.id)
        if var is not None:
            return Linear(0, (var,), var) if var in self.ivs else None
        if x.id in self.lin:
            return self.lin[x.id]
        var = self.inv_var.get(x.id)
        if var is not None:
            return Linear(0, (var,))
        return None  # defined in the loop by something we do not model, or unknown

    def inst(self, ins: Inst) -> None:
        for d in ins.dests:
            self.lin[d.id] = None
        if len(ins.dests) != 1:
            return
        op = ins.op
        fam = op.family
        out: Linear | None = None
        if fam is Family.INCDEC:
            a = self.of(ins.args[0])
            if a is not None:
                out = a.shifted(1 if op.operation == "inc" else -1)
        elif fam is Family.ALU and op.operation in ("add", "sub"):
            a, b = self.of(ins.args[0]), self.of(ins.args[1])
            if a is not None and b is not None:
                out = _add(a, b) if op.operation == "add" else _sub(a, b)
        else:
            return
        if out is not None and op.width != 64:
            out = Linear(out.const, out.vars, out.iv, (*out.pre, out))
            self.own_pre[ins.pc] = out
        self.lin[ins.dests[0].id] = out


def _add(a: Linear, b: Linear) -> Linear | None:
    if a.iv is not None and b.iv is not None:
        return None
    vars_ = a.vars + b.vars
    if len(set(vars_)) != len(vars_):
        return None
    return Linear(a.const + b.const, vars_, a.iv if a.iv is not None else b.iv, a.pre + b.pre)


def _sub(a: Linear, b: Linear) -> Linear | None:
    if b.vars:
        return None
    return Linear(a.const - b.const, a.vars, a.iv, a.pre + b.pre)


def _latch_values(fn: IRFunction, loop: NaturalLoop) -> dict[int, Operand]:
    latch = loop.latches[0]
    return {p.var: v for p in fn.blocks[loop.header].phis for pred, v in p.incoming if pred == latch}


def _induction(fn: IRFunction, loop: NaturalLoop) -> tuple[_Eval, dict[int, Step], dict[int, Linear]]:
    """The largest set of consistent induction variables (a fixpoint: a variable
    whose update is not "itself plus a step" is dropped and the rest re-checked)."""
    incoming = _latch_values(fn, loop)
    ivs = {v for v in incoming if v < NUM_REGS}
    while True:
        ev = _Eval(fn, loop, ivs)
        steps: dict[int, Step] = {}
        updates: dict[int, Linear] = {}
        for v in sorted(ivs):
            upd = ev.of(incoming[v])
            if upd is None or upd.iv != v:
                continue
            others = [x for x in upd.vars if x != v]
            if len(others) > 1 or any(x in ivs for x in others):
                continue
            steps[v] = Step(upd.const, others[0] if others else None)
            updates[v] = upd
        if set(steps) == ivs:
            return ev, steps, updates
        ivs = set(steps)


def _cp_operands(loop_blocks: list[IRBlock], t: Branch, ev: _Eval) -> tuple[Linear, Linear] | None:
    """Linear forms of the two values the latch's JR compares."""
    if type(t.lhs) is not Value:
        return None
    for b in loop_blocks:
        for ins in b.insts:
            if ins.op.family is Family.CP and ins.dests[0] is t.lhs:
                lhs = ev.of(ins.args[0])
                if ins.op.operation == "cp":
                    if t.rhs is not ins.dests[1]:
                        return None
                    rhs = ev.of(ins.args[1])
                else:
                    rhs = Linear(sext(ins.imm & MASK32, 32))
                if lhs is None or rhs is None:
                    return None
                return lhs, rhs
    return None


def _exit_test(fn: IRFunction, loop: NaturalLoop, ev: _Eval, steps: dict[int, Step]) -> ExitTest | None:
    latch = fn.blocks[loop.latches[0]]
    t = latch.term
    if not isinstance(t, Branch):
        return None
    if t.taken == loop.header and t.fallthrough not in loop.body:
        cond = t.cond
    elif t.fallthrough == loop.header and t.taken not in loop.body:
        cond = _NEGATE[t.cond]
    else:
        return None
    ops = _cp_operands([fn.blocks[k] for k in fn.blocks if k in loop.body], t, ev)
    if ops is None:
        return None
    value, bound = ops
    if value.iv is None:
        value, bound, cond = bound, value, _SWAP[cond]
    if value.iv is None or bound.iv is not None:
        return None
    step = steps[value.iv]
    if cond == 2:  # ne
        if step.var is not None or step.const % 2 == 0:
            return None
        return ExitTest(value, bound, "ne", inverse=pow(step.const & MASK32, -1, U32))
    if cond == 1:
        return None  # continue while equal: at most two iterations
    signed = cond in (3, 4, 5, 6)
    decreasing = cond in (5, 6, 9, 10)
    kind = "lt" if cond in (3, 5, 7, 9) else "le"
    if step.var is None:
        t32 = sext(step.const & MASK32, 32)
        if t32 == 0 or (t32 < 0) != decreasing:
            return None  # the test never fails before the value wraps: leave it to the checked loop
    flip = (0x8000_0000 if signed else 0) ^ (MASK32 if decreasing else 0)
    return ExitTest(value, bound, kind, flip, decreasing)


def _u32_checks(values: list[Linear]) -> list[RangeCheck]:
    out: list[RangeCheck] = []
    seen: set[Linear] = set()
    todo = list(values)
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        out.append(RangeCheck(Linear(v.const, v.vars, v.iv), 0, 1, u32=True))
        todo.extend(v.pre)
    return out


def analyse_loop(fn: IRFunction, loop: NaturalLoop, has_readonly: bool) -> LoopPlan | None:
    """The versioning plan of ``loop`` (innermost, in ``fn``), or None when it has
    no countable exit test or is not worth versioning."""
    if len(loop.latches) != 1:
        return None
    blocks = [fn.blocks[k] for k in fn.blocks if k in loop.body]
    if any(isinstance(b.term, Call) or b.kind for b in blocks):
        return None
    total = sum(b.cost for b in blocks)
    if total > MAX_BODY_COST:
        return None
    succ = function_graph(fn)
    max_cost = longest_path(loop, succ, {k: fn.blocks[k].cost for k in loop.body})
    if max_cost is None or max_cost == 0:
        return None
    ev, steps, updates = _induction(fn, loop)
    test = _exit_test(fn, loop, ev, steps)
    if test is None:
        return None
    groups: dict[tuple[Linear, bool], tuple[int, int]] = {}
    unchecked: set[int] = set()
    for b in blocks:
        for ins in b.insts:
            fam = ins.op.family
            if fam is not Family.LOAD and fam is not Family.STORE:
                continue
            base = ev.of(ins.args[0])
            if base is None:
                continue
            write = fam is Family.STORE and has_readonly
            key = (base, write)
            lo, hi = groups.get(key, (ins.imm, ins.imm + ins.op.width))
            groups[key] = (min(lo, ins.imm), max(hi, ins.imm + ins.op.width))
            unchecked.add(ins.pc)
    checks: list[RangeCheck] = []
    needs: list[Linear] = []
    for (base, write), (lo, hi) in groups.items():
        checks.append(RangeCheck(Linear(base.const, base.vars, base.iv), lo, hi, write=write))
        needs.extend(base.pre)
        if base.iv is not None:
            needs.extend(updates[base.iv].pre)
    for upd in updates.values():  # every induction variable exact: plain adds in the fast copy
        needs.extend(upd.pre)
    u32 = _u32_checks(needs)
    proven = {c.value for c in u32}

    def is_exact(v: Linear) -> bool:
        recurrence = updates[v.iv].pre if v.iv is not None else ()
        return all(c.value in proven for c in _u32_checks([*v.pre, *recurrence]))

    exact = {pc for pc, v in ev.own_pre.items() if is_exact(v)}
    unroll = UNROLL if len(blocks) == 1 and max_cost <= UNROLL_MAX_COST else 1
    return LoopPlan(loop.header, loop.latches[0], loop.body, steps, test, (*checks, *u32),
                    frozenset(unchecked), frozenset(exact), max_cost, max(1, POLL_BUDGET // max_cost), unroll)
