"""Interprocedural facts the lifter needs before it lifts a function.

Computed on the :class:`~zjit.backends.middle.plan.Shape` of every function (its
verifier blocks, CALLs and tail calls):

* :func:`modified_vars`: the state variables a function may change, itself or
  through its callees and tail callees (a caller's constants in the others stay
  constants across a call);
* :func:`cmp_flow`: whether some caller may read CMP after a call returns,
  before rewriting it (conditional JR reads CMP, CP/CPI write it), and whether
  a function may read the CMP it is called with; a call passes CMP only to a
  callee that reads it, and a function returns it only when a caller needs it;
* :func:`call_components`: strongly connected components of the graph of calls
  and tail calls (a call inside one component is part of a recursion);
* :func:`call_depth_bound`: on the lifted module, the deepest guest call
  nesting (the engines size their stacks with it).

:func:`effects` bundles what the lifter uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from zjit.verifier import VerifiedProgram

from zjit.isa import NUM_REGS, Family

from .graphs import sccs
from .guest import operands_of
from .ir import IRModule
from .plan import Shape

Event = tuple[str, int]
"""First CMP event of a block: ("read"|"write"|"ret"|"none", 0) or ("call", callee)."""


class BlockFacts:
    """Per verifier block facts, computed once per block (blocks may be shared)."""

    def __init__(self, program: VerifiedProgram) -> None:
        self.program = program
        self._writes: dict[int, frozenset[int]] = {}
        self._events: dict[int, Event] = {}

    def writes(self, pc: int) -> frozenset[int]:
        """State variables the block's own instructions write (CALLs apart)."""
        w = self._writes.get(pc)
        if w is None:
            acc: set[int] = set()
            for ins in self.program.blocks[pc].instrs:
                if ins.op.family is not Family.CALL:
                    acc.update(operands_of(ins)[1])
            w = self._writes[pc] = frozenset(acc)
        return w

    def event(self, pc: int) -> Event:
        """What the block does with CMP first."""
        e = self._events.get(pc)
        if e is None:
            e = ("none", 0)
            for ins in self.program.blocks[pc].instrs:
                fam = ins.op.family
                if fam is Family.CP:
                    e = ("write", 0)
                    break
                if fam is Family.JR and ins.rs1 != 0:
                    e = ("read", 0)
                    break
                if fam is Family.CALL:
                    e = ("call", ins.target)
                    break
                if fam is Family.RET:
                    e = ("ret", 0)
                    break
            self._events[pc] = e
        return e


def modified_vars(facts: BlockFacts, shapes: dict[int, Shape]) -> dict[int, set[int]]:
    """State variables each function may change (a fixpoint over calls and tail calls)."""
    own: dict[int, set[int]] = {}
    for e, sh in shapes.items():
        acc: set[int] = set()
        for b in sh.succ:
            acc |= facts.writes(b)
        own[e] = acc
    out = {e: [c for _, c in sh.calls] + [t for _, t in sh.tails] for e, sh in shapes.items()}
    changed = True
    while changed:
        changed = False
        for e, callees in out.items():
            mine = own[e]
            for c in callees:
                extra = own[c] - mine
                if extra:
                    mine |= extra
                    changed = True
    return own


def cmp_flow(facts: BlockFacts, shapes: dict[int, Shape]) -> tuple[dict[int, bool], dict[int, bool]]:
    """For each function, whether a caller may read CMP after it returns, and
    whether it may read the CMP it was called with (directly, through a callee
    or by returning it to a caller that needs it).

    A fixpoint over the call graph: a CALL reads CMP when the callee may read its
    incoming CMP; a tail call's callee returns to this function's callers.
    """
    need = dict.fromkeys(shapes, False)
    reads_first = dict.fromkeys(shapes, False)
    tails_of: dict[int, dict[int, list[int]]] = {}
    for e, sh in shapes.items():
        by_block: dict[int, list[int]] = {}
        for b, t in sh.tails:
            by_block.setdefault(b, []).append(t)
        tails_of[e] = by_block
    changed = True
    while changed:
        changed = False
        for e, sh in shapes.items():
            tails = tails_of[e]
            live: dict[int, bool] = {}
            order = list(reversed(sh.succ))
            for _ in range(len(order) + 1):  # to a fixpoint inside the function
                stable = True
                for b in order:
                    kind, callee = facts.event(b)
                    if kind == "read" or (kind == "call" and reads_first[callee]):
                        v = True
                    elif kind == "write":
                        v = False
                    elif kind == "ret":
                        v = need[e]
                    else:
                        v = any(live.get(s, False) for s in sh.succ[b]) or any(
                            reads_first[t] for t in tails.get(b, ()))
                    if live.get(b) != v:
                        live[b] = v
                        stable = False
                if stable:
                    break
            if live.get(e, False) and not reads_first[e]:
                reads_first[e] = changed = True
            for b, callee in sh.calls:
                after = facts.program.blocks[b].instrs[-1].next_pc
                passes_on = reads_first[after] if after in tails.get(b, ()) else live.get(after, False)
                if passes_on and not need[callee]:
                    need[callee] = changed = True
            if need[e]:
                for _, t in sh.tails:
                    if not need[t]:
                        need[t] = changed = True
    return need, reads_first


def call_components(shapes: dict[int, Shape]) -> dict[int, int]:
    """Strongly connected components of the graph of calls and tail calls."""
    return sccs({e: [c for _, c in sh.calls] + [t for _, t in sh.tails] for e, sh in shapes.items()})


@dataclass(frozen=True, slots=True)
class Effects:
    """What the lifter needs to know about every function before lifting it."""

    modifies: dict[int, tuple[int, ...]]
    """State variables a call of the function may change (CMP only when some
    caller reads it after the call)."""
    cmp_returned: dict[int, bool]
    """Some caller may read CMP after the function returns."""
    cmp_read: dict[int, bool]
    """The function may read the CMP it is called with."""


def effects(program: VerifiedProgram, shapes: dict[int, Shape]) -> Effects:
    """The :class:`Effects` of every function of ``program``."""
    facts = BlockFacts(program)
    mods = modified_vars(facts, shapes)
    need, reads = cmp_flow(facts, shapes)
    kept = {e: tuple(sorted(m if need[e] else {v for v in m if v < NUM_REGS})) for e, m in mods.items()}
    return Effects(kept, need, reads)


def call_depth_bound(module: IRModule) -> int | None:
    """Longest chain of nested guest calls from any function (None if recursive).
    Tail calls (:class:`~zjit.backends.middle.ir.TailCall`) add no depth, so a cycle of
    tail calls alone is not recursion."""
    funcs = module.functions
    edges = {pc: [(c, 1) for c in fn.callees()] + [(t, 0) for t in fn.tail_callees()]
             for pc, fn in funcs.items()}
    comp = sccs({pc: [c for c, _ in out] for pc, out in edges.items()})
    for pc, out in edges.items():
        if any(w and comp[c] == comp[pc] for c, w in out):
            return None  # a call inside a cycle: recursion
    # Components come out of Tarjan's algorithm callees first.
    depth: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for pc in funcs:
        members.setdefault(comp[pc], []).append(pc)
    for c in sorted(members):
        best = 0
        for pc in members[c]:
            for callee, w in edges[pc]:
                if comp[callee] != c:
                    best = max(best, depth[comp[callee]] + w)
        depth[c] = best
    return max(depth.values(), default=0)
