"""The package's layering, read from the source: every import, including the lazy ones inside
functions, goes to the module's own package or a lower one, and no imports form a cycle.

    data       items, formats, public survey files, splits, regions, run-folder records
    methods    metrics, baselines, priors, calibration, ordering, stats, prompts
    backends   the scoring interface, options and registry, hf, openai, scoring, model names,
               embedded models, devices, loading, adapters
    training   the recipe, batches, losses, validation, memory, distributed
    simulator  the public Simulator (a module at the top)
    report     results.md sections (with the hooks a study fills in), report.html, charts, tables
    studies    budgets and recipes, the study specs and their registry, the study runner
    cli        the command line; ``__init__`` (the public API re-exports) and ``__main__``

The report sits under the studies: the runner writes ``results.md`` and ``report.html``, and
the report reads the run folder through ``data.records`` only, never a study (a study hands its
own sections in).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "surveytune"

LAYERS = ("data", "methods", "backends", "training", "simulator", "report", "studies", "cli")
TOP_LEVEL = {"simulator": "simulator", "__init__": "cli", "__main__": "cli"}
"""Modules directly in surveytune/ and the layer each belongs to."""

MAX_LINES = 500
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS: dict[str, str] = {  # "module.function" -> why it may be longer
}


def _modules() -> list[str]:
    """Every module as its dotted name below surveytune ("data.items", "simulator")."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _path(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _layer(module: str) -> str | None:
    top = module.split(".")[0]
    return TOP_LEVEL.get(top) if "." not in module and top in TOP_LEVEL else (
        top if top in LAYERS else None)


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The surveytune modules a ``from ... import`` names (relative ones resolved)."""
    if node.level:
        package = module.split(".")
        if not _path(module).name == "__init__.py":
            package = package[:-1]
        base = package[:len(package) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    elif node.module and node.module.split(".")[0] == "surveytune":
        target = ".".join(node.module.split(".")[1:])
    else:
        return []
    known = set(_modules())
    found = []
    for alias in node.names:  # from surveytune.data import items: the module data.items
        sub = f"{target}.{alias.name}" if target else alias.name
        found.append(sub if sub in known else target or "__init__")
    return found


def _imports(module: str) -> set[str]:
    """The surveytune modules ``module`` imports anywhere in its source."""
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):  # every node: imports inside functions count too
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, node))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "surveytune":
                    found.add(".".join(parts[1:]) or "__init__")
    found.discard(module)
    return found


def test_every_module_has_a_layer():
    assert [m for m in _modules() if _layer(m) is None] == [], (
        "put modules in a layer's package, or add a top-level one to TOP_LEVEL")


def test_imports_go_down_the_layers():
    known = set(_modules())
    wrong = []
    for module in _modules():
        for target in sorted(_imports(module)):
            if target not in known:
                wrong.append(f"{module} imports unknown surveytune module {target}")
            elif LAYERS.index(_layer(target)) > LAYERS.index(_layer(module)):
                wrong.append(f"{module} ({_layer(module)}) imports {target} "
                             f"({_layer(target)}), a higher layer")
    assert wrong == []


def test_no_import_cycles():
    known = set(_modules())
    graph = {module: _imports(module) & known for module in _modules()}
    cycles = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target, path + [target], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module], done)
    assert cycles == []


def test_modules_and_functions_stay_small():
    long_modules, long_functions = {}, {}
    for module in _modules():
        source = _path(module).read_text(encoding="utf-8")
        if len(source.splitlines()) > MAX_LINES:
            long_modules[module] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                name = f"{module}.{node.name}"
                if lines > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    long_functions[name] = lines
    assert long_modules == {}, f"split these by job (at most {MAX_LINES} lines): {long_modules}"
    assert long_functions == {}, (f"split these functions (at most {MAX_FUNCTION_LINES} "
                                  f"lines): {long_functions}")


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("")
    (tmp_path / "data" / "low.py").write_text(
        "def f():\n    from ..report.high import x\n    return x\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "__init__.py").write_text("")
    (tmp_path / "report" / "high.py").write_text("from surveytune.data import low\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert _imports("data.low") == {"report.high"} and _imports("report.high") == {"data.low"}
