"""The module graph of snnx, read from the source with ``ast``: no cycles, ``snnx/ir`` at the bottom,
no private module used from another package.

Every import counts: module level, inside functions (lazy imports) and under ``TYPE_CHECKING``; they
are design dependencies even when they do not run at import time. ``import a.b.c`` and
``from a.b import c`` are edges to the module actually imported (``a.b.c`` when it is a module, else
``a.b``); a package's ``__init__`` is a module of its own (``snnx.metrics``). Imports by string
(``importlib.import_module``, entry points) are not edges: that is how plugins are loaded.
See docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "snnx"
#: What ``snnx/ir`` may import from snnx besides itself.
IR_ALLOWED = ("snnx.errors",)


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # path:line of the import

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}  ({self.where})"


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is_package)}`` for every module under snnx/."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    return module if MODULES[module][1] else module.rpartition(".")[0]


def _existing(name: str) -> str | None:
    """``name`` or its longest prefix that is a module of snnx."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.AST) -> list[str]:
    """The dotted names an import statement in ``module`` imports (modules, or packages it reads from)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = _package_of(module).split(".")
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]


def _edges() -> list[Edge]:
    edges: dict[Edge, None] = {}  # ordered and without repeats (one statement may import several names)
    for module, (path, _is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for name in _imported(module, node):
                if name.split(".")[0] != PACKAGE:
                    continue
                target = _existing(name)
                if target is not None and target != module:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    edges[Edge(module, target, where)] = None
    return list(edges)


EDGES = _edges()


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def _shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A shortest cycle through ``start`` inside ``members`` (breadth first), as a list of modules."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return [start]


def import_cycles() -> list[str]:
    """One line per cycle of modules: the shortest cycle and the import lines inside the component."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        graph[e.src].add(e.dst)
    lines = []
    for component in _strongly_connected(graph):
        members = set(component)
        cycle = _shortest_cycle(graph, component[0], members)
        inner = sorted({str(e) for e in EDGES if e.src in members and e.dst in members})
        lines.append(" -> ".join(cycle) + "\n      " + "\n      ".join(inner))
    return lines


def upward_from_ir() -> list[Edge]:
    return [
        e for e in EDGES
        if (e.src == "snnx.ir" or e.src.startswith("snnx.ir."))
        and not (e.dst == "snnx.ir" or e.dst.startswith("snnx.ir.") or e.dst in IR_ALLOWED)
    ]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_across_packages() -> list[Edge]:
    """Imports of ``pkg._private`` (module or package) from outside ``pkg`` (and outside ``_private``)."""
    bad = []
    for e in EDGES:
        parts = e.dst.split(".")
        importer = _package_of(e.src)
        for i in range(1, len(parts)):
            if not _is_private(parts[i]):
                continue
            owner, private = ".".join(parts[:i]), ".".join(parts[: i + 1])
            inside = importer == owner or importer == private or importer.startswith(private + ".")
            if not inside:
                bad.append(e)
                break
    return bad


def _report(title: str, items: list) -> str:
    return f"{title} ({len(items)}):\n  " + "\n  ".join(map(str, items))


def test_the_module_graph_is_read():
    # a guard for the test itself: it sees the packages and the edges it is about
    assert {"snnx", "snnx.ir.nodes", "snnx.metrics", "snnx.cli"} <= set(MODULES)
    assert any(e.src == "snnx.metrics.stats" and e.dst == "snnx.ir.prepare" for e in EDGES)
    lazy = ast.parse("def f():\n    from snnx.ir import nodes, prepare\n")
    assert _imported("snnx.cli", lazy.body[0].body[0]) == ["snnx.ir.nodes", "snnx.ir.prepare"]
    relative = ast.parse("from .stats import Stats\nfrom . import render\n")
    assert [_imported("snnx.metrics", n) for n in relative.body] == [["snnx.metrics.stats"], ["snnx.metrics.render"]]


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, _report("import cycles (every import counts, lazy and TYPE_CHECKING too)", cycles)


def test_ir_imports_nothing_above_it():
    bad = upward_from_ir()
    assert not bad, _report("snnx/ir imports from snnx outside snnx.ir and snnx.errors", bad)


def test_no_private_module_is_imported_from_another_package():
    bad = private_across_packages()
    assert not bad, _report("private modules imported from another package (make the helper public)", bad)


if __name__ == "__main__":  # python tests/test_architecture.py: print everything it finds
    for title, items in (
        ("cycles", import_cycles()),
        ("upward from snnx/ir", upward_from_ir()),
        ("private across packages", private_across_packages()),
    ):
        print(_report(title, items))
