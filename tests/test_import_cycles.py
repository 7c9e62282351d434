"""No import cycle inside ls_llm: a loop held open by an import inside a function is still a loop (the two
modules cannot be read, tested or moved apart). Every import statement counts, at module level or inside a
function; `from pkg import name` points at the submodule `pkg.name` when there is one, else at `pkg`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ls_llm"



def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _imported(node: ast.AST, here: str, is_package: bool, modules) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = (here if is_package else here.rpartition(".")[0]).split(".")
        parent = parent[:len(parent) - (node.level - 1)]
        base = ".".join(parent + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the ls_llm modules it imports anywhere in its text (the nearest module of a dotted name)."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, name, is_package, modules):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
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


def test_finder_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "ls_llm"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from ls_llm.sub.a import f\n")  # a package importing its own module
    (pkg / "sub" / "a.py").write_text("def f():\n    from ls_llm.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("import ls_llm.sub.a\n")
    (pkg / "d.py").write_text("from ls_llm.sub import a\n")
    graph = import_graph(pkg)
    assert graph["ls_llm.sub.a"] == {"ls_llm.sub.b"} and graph["ls_llm.sub.b"] == {"ls_llm.sub.c"}
    assert cycles(graph) == [frozenset({"ls_llm.sub.a", "ls_llm.sub.b", "ls_llm.sub.c"})]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycle_in_ls_llm():
    found = cycles(import_graph())
    assert not found, "import cycles (move the shared piece down): " + "; ".join(
        " <-> ".join(sorted(c)) for c in found)
