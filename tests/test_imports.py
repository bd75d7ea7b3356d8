"""The project's import graph: no cycles among rag, ui and eval, and dependencies run one way (eval, ui -> rag).

A small AST walk rather than importing anything: every `import`/`from ... import` counts, module-level or inside a
function (a lazy import is a dependency too), and so does `importlib.import_module("...")` with a literal name.
eval/ is a folder of scripts that import each other by bare name (`import bench`), so bare names are resolved
against the importing script's folder first.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag", "ui", "eval")

KNOWN_CYCLES: list[frozenset[str]] = []  # a cycle to live with for a while goes here, with the reason


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_names(tree: ast.AST, importer: str, is_package: bool) -> set[str]:
    """Every module name `tree` imports, relative ones made absolute; `from m import x` gives `m.x`, which resolves
    to the submodule m.x if there is one and to m otherwise."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def resolve(name: str, importer: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to from `importer`, or None for the standard library and third parties."""
    folder = importer.rpartition(".")[0]
    candidates = [name]
    if folder and folder not in modules:  # a folder of scripts (eval/), run with their folder on sys.path
        candidates.append(f"{folder}.{name}")
    for candidate in candidates:
        if candidate.split(".")[0] not in PACKAGES:
            continue
        while candidate and candidate not in modules:  # `from rag.x import name`: the module is rag.x
            candidate = candidate.rpartition(".")[0]
        if candidate:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {resolve(n, name, modules) for n in imported_names(tree, name, path.name == "__init__.py")}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_walk_sees_lazy_relative_and_script_imports() -> None:
    source = (
        "import os\nfrom . import sibling\nfrom .sub import thing\n"
        "def later():\n    from rag.index.store import IndexStore\n    import bench\n"
        "    importlib.import_module('ui.app')\n"
    )
    names = imported_names(ast.parse(source), "rag.pkg.mod", is_package=False)
    assert names == {"os", "rag.pkg.sibling", "rag.pkg.sub.thing", "rag.index.store.IndexStore", "bench", "ui.app"}
    modules = {"rag.index.store": Path(), "eval.bench": Path(), "ui.app": Path()}
    assert resolve("rag.index.store.IndexStore", "rag.answer.chain", modules) == "rag.index.store"
    assert resolve("bench", "eval.bench_scale", modules) == "eval.bench"
    assert resolve("numpy", "rag.answer.chain", modules) is None
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles() -> None:
    graph = import_graph()
    # the walk found the project
    assert {"rag.answer.chain", "rag.serve.server", "ui.app", "eval.bench"} <= graph.keys()
    found = cycles(graph)
    assert [sorted(c) for c in found if c not in KNOWN_CYCLES] == []
    assert [sorted(c) for c in KNOWN_CYCLES if c not in found] == []  # a cycle broken: drop its exception


def test_dependencies_run_one_way() -> None:
    """rag is the library: it imports neither the page (ui) nor the scripts (eval); ui imports no script."""
    graph = import_graph()
    upward = sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if (a.split(".")[0], b.split(".")[0]) in {("rag", "ui"), ("rag", "eval"), ("ui", "eval")}
    )
    assert upward == []


def test_rag_reexports_lazily_what_type_checkers_see() -> None:
    """`rag/__init__.py` names each public name three times (a TYPE_CHECKING import, `__all__`, the lazy table):
    the three agree, every name loads, and `import rag` itself imports none of the modules."""
    import subprocess
    import sys
    from importlib import import_module

    import rag

    tree = ast.parse((ROOT / "rag" / "__init__.py").read_text(encoding="utf-8"))
    [block] = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"]
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == rag._EXPORTS
    assert sorted(rag.__all__) == sorted(seen) and len(rag.__all__) == len(seen)
    for name, module in seen.items():
        assert getattr(rag, name) is getattr(import_module(module), name)
    code = "import sys; before = set(sys.modules); import rag; print(sorted(set(sys.modules) - before))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out == "['rag']\n"  # not even typing
