"""Which IR blocks stand for a function's guest blocks: loop rotation and versioning.

Normally every guest block is lifted once and keyed by its leader pc. A
:class:`Layout` changes that for some innermost loops (keys from
:func:`~zjit.backends.middle.ir.block_key`):

* **rotation** of a loop tested at its header ``H`` (a conditional JR leaving
  the loop, whose other target ``C`` only ``H`` leads to): control entering the
  loop goes to a copy of ``H`` (:data:`ENTRY_COPY`) that enters the loop at
  ``C``, which becomes the header; ``H`` is then the latch and its test ends
  each iteration (the form :mod:`.ivs` analyses);
* **versioning** of a loop with a :class:`~.loopplan.LoopPlan`: control entering
  the loop goes to its guard (:data:`GUARD`), which runs a chunk in the fast
  copy (:data:`FAST` blocks: the loop's blocks again, with the plan's loads and
  stores unchecked, no interrupt poll and no fuel check) or continues in the
  checked loop (the blocks as lifted). In the fast copy the latch's exit test is
  a :class:`~.ir.Countdown`; when the chunk is done the test itself runs in a
  :data:`TAIL` block, which leaves the loop or goes back to the guard.

The lifter builds SSA for whatever graph this describes, so values meet in
phis wherever the copies join (the guard, the loop's exits). Nothing of a
guest block's semantics changes: a copy runs the same instructions with the
same fuel costs and trap reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zjit.verifier import VerifiedProgram

from .guest import intra_successors
from .ir import ENTRY_COPY, FAST, GUARD, ORIGINAL, TAIL, Branch, IRFunction, block_key, kind_of, leader_of
from .loopplan import LoopPlan
from .loops import NaturalLoop, function_graph, innermost, natural_loops


@dataclass(slots=True)
class _Loop:
    header: int
    body: frozenset[int]
    entry_test: int | None
    """Rotated loops: the old header (the test block entered from outside)."""
    plan: LoopPlan | None


@dataclass(slots=True)
class Layout:
    """Rotated and versioned loops of one function (see the module docstring)."""

    rotated: dict[int, tuple[int, frozenset[int]]] = field(default_factory=dict)
    """Old header -> (new header, the loop's leaders)."""
    plans: dict[int, LoopPlan] = field(default_factory=dict)
    """Header (after rotation) -> plan of a versioned loop."""
    _loop_of: dict[int, _Loop] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for old, (new, body) in self.rotated.items():
            lp = _Loop(new, body, old, self.plans.get(new))
            for pc in body:
                self._loop_of[pc] = lp
        for h, plan in self.plans.items():
            if h not in self._loop_of:
                lp = _Loop(h, plan.body, None, plan)
                for pc in plan.body:
                    self._loop_of[pc] = lp

    def edge(self, src: int | None, pc: int) -> int:
        """Key of the block that control reaches going from block ``src`` (None:
        the function's entry) to the guest block at ``pc``."""
        lp = self._loop_of.get(pc)
        if lp is None:
            return pc
        if src is not None and kind_of(src) in (ORIGINAL, FAST) and leader_of(src) in lp.body:
            return block_key(pc, FAST) if kind_of(src) == FAST else pc  # inside the loop
        if pc == lp.entry_test:
            return block_key(pc, ENTRY_COPY)
        if pc == lp.header and lp.plan is not None:
            return block_key(pc, GUARD)
        return pc

    def plan_at(self, key: int) -> LoopPlan | None:
        """The plan of the versioned loop whose guard, fast block or tail ``key`` is."""
        lp = self._loop_of.get(leader_of(key))
        return lp.plan if lp is not None else None

    def successors(self, program: VerifiedProgram, key: int) -> list[int]:
        """Keys of the blocks ``key`` may continue at."""
        kind, pc = kind_of(key), leader_of(key)
        if kind == GUARD:
            return [block_key(pc, FAST), pc]
        plan = self.plan_at(key)
        if kind == FAST and plan is not None and pc == plan.latch:
            return [block_key(plan.header, FAST), block_key(pc, TAIL)]
        return [self.edge(key, s) for s in intra_successors(program.blocks[pc])]


def rotations(fn: IRFunction) -> dict[int, tuple[int, frozenset[int]]]:
    """Innermost loops of ``fn`` tested at their header that can be rotated: old
    header -> (new header, leaders of the loop)."""
    succ = function_graph(fn)
    out: dict[int, tuple[int, frozenset[int]]] = {}
    for lp in innermost(natural_loops(fn.start, succ)):
        h = lp.header
        if len(lp.latches) != 1 or lp.latches[0] == h or fn.blocks[h].kind != ORIGINAL:
            continue
        t = fn.blocks[h].term
        latch_term = fn.blocks[lp.latches[0]].term
        if not isinstance(t, Branch) or isinstance(latch_term, Branch):
            continue
        inside = [s for s in (t.taken, t.fallthrough) if s in lp.body]
        if len(inside) != 1 or inside[0] == h or fn.blocks[inside[0]].preds != [h]:
            continue
        out[h] = (inside[0], lp.body)
    return out


def loop_candidates(fn: IRFunction) -> list[NaturalLoop]:
    """The innermost natural loops of ``fn``."""
    return innermost(natural_loops(fn.start, function_graph(fn)))
