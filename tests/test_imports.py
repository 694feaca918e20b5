"""The import graph of zjit's packages (docs/architecture.md): no cycles, imports
inside functions included, and ``backends/`` keeps its floor plan.

The graph is read from the sources with :mod:`ast`: every ``import`` and ``from
... import`` at module level or inside functions (relative imports resolved;
``from package import name`` counts as importing the submodule ``name`` when
there is one), and ``__import__``/``importlib.import_module`` calls whose
argument is a string constant or a module-level string constant. Imports under
``if TYPE_CHECKING:`` are left out: they never run. Registry strings such as
:data:`zjit.runtime.BACKENDS` are configuration, not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"zjit": ROOT / "zjit", "zjit.verifier": ROOT / "verifier", "zjit.backends": ROOT / "backends",
            "zjit.fuzz": ROOT / "fuzz"}
MAX_BACKENDS_MODULES = 10

BACKENDS_PARTS: dict[str, set[str]] = {
    # the pipeline, lowest first: what each part of zjit.backends may import of the others
    "middle": set(),
    "context": set(),
    "cache_fs": set(),
    "fingerprint": {"cache_fs"},
    "targets": {"fingerprint"},
    "cache": {"targets", "fingerprint", "cache_fs"},
    "llvm": {"middle", "context", "targets"},
    "objfile": {"targets"},
    "run": {"context"},
    "baseline": {"middle", "objfile", "context", "llvm", "cache", "targets"},
    "backtrace": {"objfile", "context", "baseline"},
    "tiering": {"baseline", "backtrace", "objfile", "cache", "context", "llvm", "middle", "targets"},
    "engine": {"context", "cache", "llvm", "middle", "objfile", "tiering"},
    "native": {"engine", "run", "backtrace", "context", "targets", "objfile"},
    "arm64": {"engine", "run", "backtrace", "context", "targets", "objfile"},
    "aot": {"context", "targets", "llvm", "middle", "objfile"},
    "listing": {"context", "targets", "llvm", "middle", "objfile", "native"},
}
"""Part (a top-level module or subpackage of ``backends/``) -> the parts it may
import. A new part must be added here and to docs/architecture.md."""


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts:
                continue
            parts = [package, *rel.parts[:-1]]
            if path.name != "__init__.py":
                parts.append(path.stem)
            found[".".join(parts)] = (path, path.name == "__init__.py")
    return found


MODULES = _modules()


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _nodes(tree: ast.Module) -> list[ast.AST]:
    """Every node outside ``if TYPE_CHECKING:`` blocks (their ``else`` kept)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if _type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def imports_of(name: str) -> set[str]:
    """The modules of :data:`MODULES` that module ``name`` imports."""
    path, is_package = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if is_package else name.rpartition(".")[0]
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)
                 if isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    out: set[str] = set()
    for node in _nodes(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    out.add(f"{source}.{alias.name}")
                elif source in MODULES:
                    out.add(source)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("__import__", "import_module"):
                arg = node.args[0]
                target = arg.value if isinstance(arg, ast.Constant) else \
                    constants.get(arg.id) if isinstance(arg, ast.Name) else None
                if isinstance(target, str) and target in MODULES:
                    out.add(target)
    out.discard(name)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def test_the_graph_is_read_for_real() -> None:
    """Known edges of every kind show up: module level, inside a function,
    relative, ``from package import submodule`` and a constant ``import_module``."""
    assert "zjit.backends.middle.guest" in GRAPH["zjit.backends.middle.lift"]
    assert "zjit.backends.tiering.code" in GRAPH["zjit.backends.engine"]  # inside _tiered()
    assert "zjit.backends.objfile.elf" in GRAPH["zjit.backends.arm64.engine"]  # from ..objfile import elf
    assert "zjit.backends.listing" in GRAPH["zjit.cli.cmd_disasm"]  # import_module(LISTING_MODULE)
    assert "zjit.runtime" not in GRAPH["zjit.instance"]  # a TYPE_CHECKING import
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_backends_top_level_stays_small() -> None:
    top = sorted(p.name for p in PACKAGES["zjit.backends"].glob("*.py"))
    assert len(top) <= MAX_BACKENDS_MODULES, top


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "backends" else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) is not None))
def test_backends_imports_follow_the_floor_plan(module: str) -> None:
    part = _part(module)
    assert part in BACKENDS_PARTS, f"{module}: a new part of backends/ goes into BACKENDS_PARTS and docs/architecture.md"
    for target in GRAPH[module]:
        other = _part(target)
        if other is not None and other != part:
            assert other in BACKENDS_PARTS[part], f"{module} imports {target}: {part} may not import {other}"


ENGINES_AND_TOOLS = ("zjit.backends", "zjit.fuzz", "zjit.cli", "zjit.testing")
"""The compiling engines and the tools above the runtime (command line, fuzzer,
hypothesis strategies): the core never imports them."""
BRIDGES = {"zjit.inspection": "zjit.runtime"}
"""Core modules that reach into the engines, inside their functions only (when a
listing is asked for) -> the one module that may import them."""


def test_core_does_not_import_engines_or_tools() -> None:
    """Below the command line nothing in zjit imports the compiling engines, the
    fuzzer or the test strategies (but through a bridge, by its one user), and the
    verifier imports only zjit's core."""
    for module, targets in GRAPH.items():
        if module.startswith(ENGINES_AND_TOOLS) or module == "zjit.__main__":
            continue
        for bridge, user in BRIDGES.items():
            assert bridge not in targets or module == user, f"{module} imports {bridge}"
        if module not in BRIDGES:
            assert not {t for t in targets if t.startswith(ENGINES_AND_TOOLS)}, module
        if module.startswith("zjit.verifier"):
            assert not {t for t in targets if t.startswith(("zjit.interp", "zjit.runtime", "zjit.instance"))}, module


def test_backends_subpackages_say_what_they_hold() -> None:
    for init in PACKAGES["zjit.backends"].glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init


def test_bridges_import_engines_only_inside_functions() -> None:
    for bridge in BRIDGES:
        tree = ast.parse(MODULES[bridge][0].read_text())
        top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
        assert not {t for t in top if t.startswith(ENGINES_AND_TOOLS)}, bridge
        assert {t for t in GRAPH[bridge] if t.startswith("zjit.backends")}, bridge  # the check can fail
