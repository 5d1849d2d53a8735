"""The package's shape: an import graph without cycles, one home for version names, layers kept apart.

The graph is read from the source with ``ast`` (every ``import`` in a module, at module level
or inside a function), so a cycle hidden behind a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "restoration"
VERSION_NAMES = {"input", "demucs", "spectral_gating"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (``from .x import y`` names ``x``, or ``x.y`` when that is a module)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_reader_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "restoration.report" in graph["restoration.pipeline"]  # from .report import Report
    assert "restoration.generation" in graph["restoration.pipeline"]  # inside a function
    assert "restoration.pipeline" in graph["restoration.app.jobs"]  # from ..pipeline import run
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("restoration.pipeline", "restoration.plots"),  # figures are drawn by outputs, not the pipeline
        ("restoration.pipeline", "restoration.app"),
        ("restoration.outputs", "restoration.pipeline"),  # writing a report needs the Report, not the flow
    ],
)
def test_layers_do_not_reach_up(module, forbidden):
    imported = import_graph()[module]
    assert not {m for m in imported if m == forbidden or m.startswith(forbidden + ".")}


def test_runtime_modules_do_not_import_test_stand_ins():
    graph = import_graph()
    runtime = [m for m in graph if not m.startswith("restoration.standins") and m != "restoration.bench"]
    offenders = {m for m in runtime if any(i.startswith("restoration.standins") for i in graph[m])}
    assert not offenders


def test_the_app_layer_does_not_import_gradio():
    for name, path in modules().items():
        if name.startswith("restoration.app"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not {n for n in names if n.split(".")[0] == "gradio"}, name


def version_literals(path: Path) -> list[int]:
    """Lines of dict or tuple literals keyed by (or listing) two or more version names."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict):
            items = node.keys
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        else:
            continue
        names = {k.value for k in items if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if len(names & VERSION_NAMES) >= 2:
            lines.append(node.lineno)
    return lines


def imports_the_package(path: Path) -> bool:
    """Whether ``path`` imports anything from ``restoration`` (a self-contained script, such as the
    benchmark's stock pipeline that runs in a bare interpreter, cannot import the version names)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "restoration"):
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "restoration" for a in node.names):
            return True
    return False


def test_version_names_and_titles_are_defined_only_in_versions_py():
    files = [p for p in PACKAGE.rglob("*.py")
             if (p.name != "versions.py" or p.parent != PACKAGE) and imports_the_package(p)]
    offenders = {str(p.relative_to(ROOT)): version_literals(p) for p in [*files, ROOT / "app.py"]}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"version names or titles spelled out again (import restoration.versions): {offenders}"


def test_the_version_literal_check_catches_a_title_dict(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('TITLES = {"input": "Input", "demucs": "Demucs", "spectral_gating": "Spectral gating"}\n'
                    'ORDER = ("input", "demucs", "spectral_gating")\nOK = {"input": 1}\n')
    assert version_literals(path) == [1, 2]
