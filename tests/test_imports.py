"""Every module of the package imports, and the import graph has no cycle.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` counts,
at the top of a file or inside a function (a lazy import still ties the two modules together);
relative imports are resolved. ``from a.b import c`` is an edge to the module ``a.b.c`` when that
is a module, else to ``a.b``. Two levels are checked: modules, and the package's top-level parts
(``genbench.data``, ``genbench.metrics``, ..., and each top-level module such as ``genbench.cli``),
where an import inside one part does not count.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import genbench

ROOT = "genbench"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, with its source file."""
    found = {ROOT: Path(genbench.__file__)}
    for info in pkgutil.walk_packages(genbench.__path__, prefix=f"{ROOT}."):
        spec = info.module_finder.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _part(name: str) -> str:
    """The top-level part a module belongs to: genbench.metrics.fid -> genbench.metrics."""
    return ".".join(name.split(".")[:2])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path [a, b, ..., a], or None."""
    state: dict[str, int] = {}     # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    by_module = {name: _imports(name, path, modules) for name, path in modules.items()}
    by_part: dict[str, set[str]] = {}
    for name, targets in by_module.items():
        by_part.setdefault(_part(name), set()).update(_part(t) for t in targets if _part(t) != _part(name))
    return by_module, by_part


def test_every_module_imports():
    failed = {}
    for name in _modules():
        if name == f"{ROOT}.__main__":   # runs the command line when imported
            continue
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - report every failure at once
            failed[name] = f"{type(err).__name__}: {err}"
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


def test_no_import_cycle_between_modules():
    cycle = _find_cycle(_graphs()[0])
    assert cycle is None, "module import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_top_level_parts():
    cycle = _find_cycle(_graphs()[1])
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from genbench.metrics import fid\n    from . import config\n"
                   "from .metrics.prdc import prdc\nimport genbench.errors\n")
    modules = _modules()
    got = _imports("genbench.mod", src, modules)
    assert got == {"genbench.metrics.fid", "genbench.config", "genbench.metrics.prdc", "genbench.errors"}
