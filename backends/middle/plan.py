"""Function layout for compile speed: split-off loops and cold functions.

Most guest code runs a bounded number of times per run: straight-line code that
is in no loop and in no function called from a loop or from a recursion. LLVM
spends as much time on it as on the loops, so the lifter

* makes the outermost loops (and the code after them) of such functions
  functions of their own (:func:`split_entries`), entered by tail calls; the code
  around the loops is left without any loop, and
* marks the functions that then have no loop and are not *hot-called* (called
  from a loop or a recursion, or by such a function) cold (:func:`cold_functions`);
  the lowering compiles them ``optnone`` (fast instruction selection, no IR
  passes), which roughly halves their compile time.

The analysis works on a :class:`Shape` of each function: its blocks and their
successors inside the function, its CALLs and the other function entries control
flows into (tail calls). Blocks "on a cycle" are those of a strongly connected
component with a cycle.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from zjit.verifier import VerifiedProgram

from zjit.isa import Family

from .graphs import on_cycles, sccs
from .guest import intra_successors


@dataclass(slots=True)
class Shape:
    """Control flow of one function."""

    succ: dict[int, list[int]] = field(default_factory=dict)
    """Block -> successor blocks inside the function."""
    calls: list[tuple[int, int]] = field(default_factory=list)
    """(block, callee) for every CALL."""
    tails: list[tuple[int, int]] = field(default_factory=list)
    """(block, entry) where control flows into another function."""
    _comp: dict[int, int] | None = None
    _cyclic: set[int] | None = None

    def components(self) -> dict[int, int]:
        """Strongly connected components of the blocks (computed once)."""
        if self._comp is None:
            self._comp = sccs(self.succ)
        return self._comp

    def cyclic(self) -> set[int]:
        """Blocks on a cycle (computed once)."""
        if self._cyclic is None:
            self._cyclic = on_cycles(self.succ, self.components())
        return self._cyclic


def verifier_shape(program: VerifiedProgram, entry: int, entries: Collection[int]) -> Shape:
    """The :class:`Shape` of the function at ``entry`` before lifting (it stops at
    the other ``entries``)."""
    shape = Shape()
    todo = [entry]
    while todo:
        pc = todo.pop()
        if pc in shape.succ:
            continue
        block = program.blocks[pc]
        inside: list[int] = []
        for s in intra_successors(block):
            if s in entries and s != entry:
                shape.tails.append((pc, s))
            else:
                inside.append(s)
                todo.append(s)
        shape.succ[pc] = inside
        last = block.instrs[-1]
        if last.op.family is Family.CALL:
            shape.calls.append((pc, last.target))
    return shape


def hot_called(shapes: dict[int, Shape]) -> set[int]:
    """Functions that may run an unbounded number of times per run although they
    have no loop: those called from a block on a cycle, those on a cycle of calls
    and tail calls, and everything they call or continue in."""
    graph = {e: [c for _, c in sh.calls + sh.tails] for e, sh in shapes.items()}
    hot = on_cycles(graph)
    for sh in shapes.values():
        if sh.calls:
            cyclic = sh.cyclic()
            hot.update(c for b, c in sh.calls if b in cyclic)
    todo = list(hot)
    while todo:
        for c in graph.get(todo.pop(), ()):
            if c not in hot and c in graph:
                hot.add(c)
                todo.append(c)
    return hot


SPLIT_MIN_COST = 64
"""Functions shorter than this many guest instructions are not split: the extra
functions cost more than the cold code saves."""


def split_entries(program: VerifiedProgram) -> set[int]:
    """Extra function entries: in functions of at least :data:`SPLIT_MIN_COST`
    instructions that are not hot-called, the header of every outermost
    single-entry loop and every block a loop exits to, unless the block is on a
    cycle or belongs to a hot-called function as well."""
    entries = set(program.functions)
    shapes = {e: verifier_shape(program, e, entries) for e in entries}
    hot = hot_called(shapes)
    hot_blocks = {b for e in hot for b in shapes[e].succ}
    blocks = program.blocks
    extra: set[int] = set()
    for e, sh in shapes.items():
        if e in hot or sum(blocks[b].cost for b in sh.succ) < SPLIT_MIN_COST:
            continue
        cyclic = sh.cyclic()
        if not cyclic:
            continue
        comp = sh.components()
        entered: dict[int, set[int]] = {}  # component -> blocks entered from outside it
        entered.setdefault(comp[e], set()).add(e)
        for b, succ in sh.succ.items():
            for s in succ:
                if comp[s] != comp[b]:
                    entered.setdefault(comp[s], set()).add(s)
                    if b in cyclic and s not in cyclic:
                        extra.add(s)  # a loop exit
        for b in cyclic:
            heads = entered.get(comp[b], set())
            if heads == {b} and b != e:
                extra.add(b)  # the only way into this loop
    return {b for b in extra if b not in entries and b not in hot_blocks}


def cold_functions(shapes: dict[int, Shape]) -> set[int]:
    """Functions with no loop that are not hot-called."""
    hot = hot_called(shapes)
    return {e for e, sh in shapes.items() if e not in hot and not sh.cyclic()}
