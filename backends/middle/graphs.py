"""Small directed-graph helpers for the lifter and the engine (graphs as
``{node: [successors...]}``; successors missing from the keys are ignored)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def sccs(graph: Mapping[int, Sequence[int]]) -> dict[int, int]:
    """Strongly connected components (Tarjan's algorithm, iterative): node ->
    component number, numbered so that every edge leads to the same or a lower
    number (callees before callers)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    comp: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    counter = ncomp = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph[node]
            while i < len(succ) and succ[i] not in graph:
                i += 1
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp[member] = ncomp
                    if member == node:
                        break
                ncomp += 1
    return comp


def on_cycles(graph: Mapping[int, Sequence[int]], comp: Mapping[int, int] | None = None) -> set[int]:
    """The nodes that lie on some cycle (a component of several nodes, or a node
    with an edge to itself); ``comp`` is :func:`sccs` of ``graph`` if known."""
    comp = sccs(graph) if comp is None else comp
    size: dict[int, int] = {}
    for c in comp.values():
        size[c] = size.get(c, 0) + 1
    return {n for n in graph if size[comp[n]] > 1 or n in graph[n]}
