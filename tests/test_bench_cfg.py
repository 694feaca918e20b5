"""The control-flow analysis behind the structured WebAssembly twin
(``bench/cfg_structure.py``) against textbook oracles: dominators from the
iterative data-flow equations, reducibility from T1/T2 reduction."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cfg_structure import analyse  # noqa: E402

Graph = dict[int, tuple[int, ...]]


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(1, 14))
    node = st.integers(0, n - 1)
    return {v: tuple(dict.fromkeys(draw(st.lists(node, max_size=3)))) for v in range(n)}


def reachable(g: Graph, root: int = 0) -> set[int]:
    seen, todo = {root}, [root]
    while todo:
        for w in g[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def dominators(g: Graph, root: int = 0) -> dict[int, set[int]]:
    """Dom(v) = {v} | intersection of Dom(p) over predecessors p, to a fixed point."""
    nodes = reachable(g, root)
    preds = {v: [p for p in nodes if v in g[p]] for v in nodes}
    dom = {v: set(nodes) for v in nodes}
    dom[root] = {root}
    changed = True
    while changed:
        changed = False
        for v in nodes - {root}:
            new = {v} | set.intersection(*(dom[p] for p in preds[v]))
            if new != dom[v]:
                dom[v], changed = new, True
    return dom


def reducible(g: Graph, root: int = 0) -> bool:
    """T1 (drop a self-loop) and T2 (merge a node into its only predecessor)
    reduce the graph to one node exactly when it is reducible."""
    nodes = reachable(g, root)
    succ = {v: {w for w in g[v] if w in nodes} for v in nodes}
    pred = {v: {p for p in nodes if v in succ[p]} for v in nodes}
    changed = True
    while changed:
        changed = False
        for v in list(succ):
            if v in succ[v]:
                succ[v].discard(v)
                pred[v].discard(v)
                changed = True
            if v != root and len(pred[v]) == 1:
                (u,) = pred[v]
                succ[u].discard(v)
                for w in succ.pop(v):
                    pred[w].discard(v)
                    pred[w].add(u)
                    succ[u].add(w)
                del pred[v]
                changed = True
    return len(succ) == 1


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_analysis_matches_the_oracles(g: Graph) -> None:
    shape = analyse(0, g.__getitem__)
    assert (shape is not None) == reducible(g)
    if shape is None:
        return
    nodes = reachable(g)
    dom = dominators(g)
    assert set(shape.rpo) == nodes and sorted(shape.rpo.values()) == list(range(len(nodes)))
    assert shape.rpo[0] == 0
    for v in nodes - {0}:  # the immediate dominator: the strict dominator every other one dominates
        strict = dom[v] - {v}
        assert shape.idom[v] in strict and strict <= dom[shape.idom[v]]
    back = {(v, w) for v in nodes for w in g[v] if w in dom[v]}  # w dominates v
    for v in nodes:
        for w in g[v]:
            assert shape.is_back_edge(v, w) == ((v, w) in back)
    assert shape.headers == {w for _, w in back}
    forward_in = {v: sum(1 for p in nodes if v in g[p] and (p, v) not in back) for v in nodes}
    assert shape.merges == {v for v, k in forward_in.items() if k >= 2}
    for x, kids in shape.merge_children.items():
        assert all(shape.idom[y] == x and y in shape.merges for y in kids)
        assert [shape.rpo[y] for y in kids] == sorted(shape.rpo[y] for y in kids)
    assert sum(map(len, shape.merge_children.values())) == len(shape.merges)


def test_irreducible_two_entry_loop_is_detected() -> None:
    assert analyse(0, {0: (1, 2), 1: (2,), 2: (1, 3), 3: ()}.__getitem__) is None
    shape = analyse(0, {0: (1,), 1: (2,), 2: (1, 3), 3: ()}.__getitem__)
    assert shape is not None and shape.headers == {1} and not shape.merges


def test_long_graphs_need_no_recursion() -> None:
    """A 60,000-node chain of diamonds inside one loop: the dominator tree is
    30,000 deep (well past Python's recursion limit)."""
    n = 60_000
    g: Graph = {}
    for v in range(0, n, 2):
        g[v] = (v + 1, v + 2)  # diamond: v -> v+1 -> v+2 and v -> v+2
        g[v + 1] = (v + 2,)
    g[n] = (0, n + 1)
    g[n + 1] = ()
    shape = analyse(0, g.__getitem__)
    assert shape is not None
    assert shape.headers == {0}
    assert shape.merges == set(range(2, n + 1, 2))
    assert shape.idom[n] == n - 2 and shape.idom[n + 1] == n
