"""What a structuring translation needs to know about a control-flow graph.

:func:`analyse` takes a single-entry graph (``root`` and a successor function)
and returns its :class:`Shape`: depth-first numbering (reverse postorder),
dominator tree, loop headers (targets of back edges) and merge nodes (nodes
with two or more forward in-edges), or ``None`` when the graph is irreducible
(some back edge's target does not dominate its source). The translation is
Ramsey's, "Beyond Relooper: recursive translation of unstructured control flow
to structured control flow" (ICFP 2022); :mod:`wasm_twin` emits it.

Everything is iterative and near-linear: one depth-first search, dominators by
Lengauer and Tarjan's algorithm with path compression (O(m log n)), and
dominance tests in constant time from a numbering of the dominator tree, so a
function of 100,000 blocks costs no recursion depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shape:
    """A reducible graph's structure; nodes are the reachable ones.

    ``rpo`` maps a node to its reverse-postorder number (the root is 0; every
    forward edge goes to a higher number, every back edge to a lower or equal
    one). ``idom`` maps every node but the root to its immediate dominator.
    ``merge_children[x]`` are the dominator-tree children of ``x`` that are
    merge nodes, in increasing reverse postorder. ``headers`` are the loop
    headers, ``merges`` the merge nodes.
    """

    root: int
    rpo: dict[int, int]
    idom: dict[int, int]
    merge_children: dict[int, list[int]]
    headers: frozenset[int]
    merges: frozenset[int]

    def is_back_edge(self, src: int, dst: int) -> bool:
        """True when ``src -> dst`` goes back to a loop header (or to itself)."""
        return self.rpo[dst] <= self.rpo[src]


def _dfs(root: int, succ: Callable[[int], Iterable[int]]) -> tuple[list[int], list[int], list[int],
                                                                   dict[int, tuple[int, ...]]]:
    """Preorder, the DFS-tree parent (as preorder numbers), postorder, successors."""
    succs: dict[int, tuple[int, ...]] = {root: tuple(succ(root))}
    pre_num = {root: 0}
    order = [root]
    parent = [-1]
    post: list[int] = []
    stack: list[tuple[int, int]] = [(root, 0)]
    while stack:
        node, i = stack[-1]
        out = succs[node]
        if i < len(out):
            stack[-1] = (node, i + 1)
            nxt = out[i]
            if nxt not in pre_num:
                pre_num[nxt] = len(order)
                order.append(nxt)
                parent.append(pre_num[node])
                succs[nxt] = tuple(succ(nxt))
                stack.append((nxt, 0))
        else:
            stack.pop()
            post.append(node)
    return order, parent, post, succs


def _idoms(order: list[int], parent: list[int], succs: dict[int, tuple[int, ...]]) -> list[int]:
    """Immediate dominators as preorder numbers (the root's is -1): Lengauer-Tarjan,
    the simple variant (path compression, no balancing)."""
    n = len(order)
    num = {v: i for i, v in enumerate(order)}
    preds: list[list[int]] = [[] for _ in range(n)]
    for v, out in succs.items():
        for w in out:
            preds[num[w]].append(num[v])
    semi = list(range(n))
    label = list(range(n))
    ancestor = [-1] * n
    idom = [-1] * n
    bucket: list[list[int]] = [[] for _ in range(n)]

    def evaluate(v: int) -> int:
        if ancestor[v] < 0:
            return v
        path = []
        x = v
        while ancestor[ancestor[x]] >= 0:
            path.append(x)
            x = ancestor[x]
        for x in reversed(path):
            a = ancestor[x]
            if semi[label[a]] < semi[label[x]]:
                label[x] = label[a]
            ancestor[x] = ancestor[a]
        return label[v]

    for w in range(n - 1, 0, -1):
        for v in preds[w]:
            u = evaluate(v)
            if semi[u] < semi[w]:
                semi[w] = semi[u]
        bucket[semi[w]].append(w)
        p = parent[w]
        ancestor[w] = p
        for v in bucket[p]:
            u = evaluate(v)
            idom[v] = u if semi[u] < semi[v] else p
        bucket[p].clear()
    for w in range(1, n):
        if idom[w] != semi[w]:
            idom[w] = idom[idom[w]]
    return idom


def _tree_intervals(children: list[list[int]]) -> tuple[list[int], list[int]]:
    """Entry and exit times of a preorder walk of a tree rooted at 0: ``a`` is an
    ancestor of (or equal to) ``b`` iff enter[a] <= enter[b] and exit[b] <= exit[a]."""
    n = len(children)
    enter, leave = [0] * n, [0] * n
    clock = 0
    stack = [(0, 0)]
    enter[0] = 0
    while stack:
        node, i = stack[-1]
        if i < len(children[node]):
            stack[-1] = (node, i + 1)
            child = children[node][i]
            clock += 1
            enter[child] = clock
            stack.append((child, 0))
        else:
            stack.pop()
            clock += 1
            leave[node] = clock
    return enter, leave


def analyse(root: int, succ: Callable[[int], Iterable[int]]) -> Shape | None:
    """The :class:`Shape` of the graph reachable from ``root`` (``succ(node)``
    lists a node's successors, without duplicates), or None if it is irreducible."""
    order, parent, post, succs = _dfs(root, succ)
    n = len(order)
    num = {v: i for i, v in enumerate(order)}
    rpo = {v: n - 1 - i for i, v in enumerate(post)}
    idom = _idoms(order, parent, succs)
    dom_children: list[list[int]] = [[] for _ in range(n)]
    for w in range(1, n):
        dom_children[idom[w]].append(w)
    enter, leave = _tree_intervals(dom_children)
    headers: set[int] = set()
    forward_preds = dict.fromkeys(order, 0)
    for v, out in succs.items():
        for w in out:
            if rpo[w] <= rpo[v]:  # a back edge: reducible only if w dominates v
                a, b = num[w], num[v]
                if not (enter[a] <= enter[b] and leave[b] <= leave[a]):
                    return None
                headers.add(w)
            else:
                forward_preds[w] += 1
    merges = frozenset(v for v, k in forward_preds.items() if k >= 2)
    merge_children: dict[int, list[int]] = {}
    for i, kids in enumerate(dom_children):
        chosen = sorted((order[k] for k in kids if order[k] in merges), key=rpo.__getitem__)
        if chosen:
            merge_children[order[i]] = chosen
    idoms = {order[w]: order[idom[w]] for w in range(1, n)}
    return Shape(root, rpo, idoms, merge_children, frozenset(headers), merges)
