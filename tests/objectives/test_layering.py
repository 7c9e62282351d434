"""The engine knows no objective: objectives/base.py (the objective contract and its kernel) builds on
engine.py, never the other way, so neither needs an import inside a function to break a loop."""

import ast
from pathlib import Path

import ls_llm.objectives as objectives

ROOT = Path(objectives.__file__).parent


def _imported_modules(path: Path, *, in_functions: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] if in_functions \
        else [tree]
    found = set()
    for scope in scopes:
        nodes = ast.walk(scope) if in_functions else ast.iter_child_nodes(scope)
        found |= {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
    return found


def test_engine_imports_no_objective_module():
    top = _imported_modules(ROOT / "engine.py", in_functions=False)
    inner = _imported_modules(ROOT / "engine.py", in_functions=True)
    assert {m for m in top | inner if m.startswith("ls_llm.")} <= {"ls_llm.objectives.softmax"}, top | inner


def test_base_imports_the_engine_at_module_level_only():
    assert "ls_llm.objectives.engine" in _imported_modules(ROOT / "base.py", in_functions=False)
    assert not {m for m in _imported_modules(ROOT / "base.py", in_functions=True) if m.startswith("ls_llm.")}

