"""Natural loops of a function's control-flow graph (dominators, back edges, nesting).

Works on any graph ``{node: [successors]}`` with a start node (the IR's block
keys and :attr:`~zjit.backends.middle.ir.IRBlock.successors`). A *back edge* is an
edge ``u -> h`` whose target dominates its source; the natural loop of header
``h`` is ``h`` plus every node that reaches one of its back edges' sources
without passing ``h``. Cycles without such a header (irreducible control flow)
are no natural loops and are left alone by the passes that read this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .ir import IRFunction


@dataclass(frozen=True, slots=True)
class NaturalLoop:
    """A natural loop: its header, its nodes (header included) and the sources of
    its back edges."""

    header: int
    body: frozenset[int]
    latches: tuple[int, ...]


def reverse_postorder(start: int, succ: Mapping[int, Sequence[int]]) -> list[int]:
    """Nodes reachable from ``start`` in reverse post-order (iterative DFS)."""
    post: list[int] = []
    seen = {start}
    stack: list[tuple[int, int]] = [(start, 0)]
    while stack:
        node, i = stack.pop()
        nxt = succ.get(node, ())
        if i < len(nxt):
            stack.append((node, i + 1))
            s = nxt[i]
            if s not in seen and s in succ:
                seen.add(s)
                stack.append((s, 0))
            continue
        post.append(node)
    post.reverse()
    return post


def dominators(start: int, succ: Mapping[int, Sequence[int]]) -> dict[int, int]:
    """Immediate dominators of the nodes reachable from ``start`` (``start`` maps to
    itself): the iterative algorithm of Cooper, Harvey and Kennedy."""
    order = reverse_postorder(start, succ)
    index = {n: i for i, n in enumerate(order)}
    preds: dict[int, list[int]] = {n: [] for n in order}
    for n in order:
        for s in succ.get(n, ()):
            if s in index:
                preds[s].append(n)
    idom: dict[int, int] = {start: start}

    def meet(a: int, b: int) -> int:
        while a != b:
            while index[a] > index[b]:
                a = idom[a]
            while index[b] > index[a]:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for n in order[1:]:
            new: int | None = None
            for p in preds[n]:
                if p in idom:
                    new = p if new is None else meet(p, new)
            if new is not None and idom.get(n) != new:
                idom[n] = new
                changed = True
    return idom


def dominates(idom: Mapping[int, int], a: int, b: int) -> bool:
    """Does ``a`` dominate ``b``?"""
    while True:
        if a == b:
            return True
        up = idom.get(b)
        if up is None or up == b:
            return False
        b = up


def natural_loops(start: int, succ: Mapping[int, Sequence[int]]) -> list[NaturalLoop]:
    """Every natural loop (one per header, all its back edges merged)."""
    idom = dominators(start, succ)
    preds: dict[int, list[int]] = {n: [] for n in idom}
    latches: dict[int, list[int]] = {}
    for n in idom:
        for s in succ.get(n, ()):
            if s in idom:
                preds[s].append(n)
                if dominates(idom, s, n):
                    latches.setdefault(s, []).append(n)
    loops: list[NaturalLoop] = []
    for h, ls in latches.items():
        body = {h}
        todo = [x for x in ls if x != h]
        body.update(todo)
        while todo:
            for p in preds[todo.pop()]:
                if p not in body:
                    body.add(p)
                    todo.append(p)
        loops.append(NaturalLoop(h, frozenset(body), tuple(ls)))
    return loops


def innermost(loops: Sequence[NaturalLoop]) -> list[NaturalLoop]:
    """The loops that contain no other loop's header."""
    headers = {lp.header for lp in loops}
    return [lp for lp in loops if not any(h in lp.body for h in headers - {lp.header})]


def function_graph(fn: IRFunction) -> dict[int, list[int]]:
    """The control-flow graph of an IR function (block key -> successor keys)."""
    return {k: [s for s in b.successors if s in fn.blocks] for k, b in fn.blocks.items()}


def longest_path(loop: NaturalLoop, succ: Mapping[int, Sequence[int]],
                 cost: Mapping[int, int]) -> int | None:
    """The largest sum of ``cost`` along a path inside ``loop`` that starts at the
    header and takes no back edge (what one iteration can cost); None when the
    body has a cycle that avoids the header (irreducible inside)."""
    best: dict[int, int] = {}
    state: dict[int, int] = {}
    order: list[int] = []
    stack: list[tuple[int, int]] = [(loop.header, 0)]
    state[loop.header] = 1
    while stack:
        node, i = stack.pop()
        nxt = [s for s in succ.get(node, ()) if s in loop.body and s != loop.header]
        if i < len(nxt):
            stack.append((node, i + 1))
            s = nxt[i]
            st = state.get(s)
            if st is None:
                state[s] = 1
                stack.append((s, 0))
            elif st == 1:
                return None  # a cycle that does not pass the header
            continue
        state[node] = 2
        order.append(node)
    for node in reversed(order):  # topological order
        here = best.get(node, 0) + cost[node]
        best[node] = here
        for s in succ.get(node, ()):
            if s in loop.body and s != loop.header:
                best[s] = max(best.get(s, 0), here)
    return max(best.values())
