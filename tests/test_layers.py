"""The package's layering, read from the source: every import, including the lazy ones inside
functions, goes to the module's own layer or a lower one, and no imports form a cycle.

    data      items, readers, loaders, public_data, splits, metrics, baselines, losses, records,
              paper, runfolder, calibration,
              regions, ordering, priors, stats
    prompts   prompts
    backends  precision, models, scoring, backend (the scoring interface and registry),
              openai_backend
    training  training, validation, adapters, memory, batches, distributed
    engines   hf_backend (loads adapters, so it sits above training's adapter files)
    simulator simulator
    report    report, report_sections, report_html, charts, tables, goals
    study     budgets, study
    cli       cli, cli_options, __main__, __init__ (the public API re-exports)

The report sits under the study: ``Study.run`` writes ``results.md`` and ``report.html``, and
the report reads the run folder through ``records`` only, never the study.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "surveytune"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("data", ("items", "readers", "loaders", "public_data", "splits", "metrics", "baselines",
              "losses", "records", "paper", "runfolder", "regions", "ordering", "priors",
              "calibration", "stats")),
    ("prompts", ("prompts",)),
    ("backends", ("precision", "models", "scoring", "backend", "openai_backend")),
    ("training", ("training", "validation", "adapters", "memory", "batches", "distributed")),
    ("engines", ("hf_backend",)),
    ("simulator", ("simulator",)),
    ("report", ("report", "report_sections", "report_html", "charts", "tables", "goals")),
    ("study", ("budgets", "study")),
    ("cli", ("cli", "cli_options", "__main__", "__init__")),
)
LAYER_OF = {module: number for number, (_, modules) in enumerate(LAYERS) for module in modules}

MAX_LINES = 500
LONG_MODULES: dict[str, str] = {}  # module -> why it may be longer


def _modules() -> list[str]:
    return sorted(path.stem for path in PACKAGE.glob("*.py"))


def _imports(module: str) -> set[str]:
    """The surveytune modules ``module`` imports anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):  # every node: imports inside functions count too
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "surveytune":
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "surveytune":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(module)
    return found


def test_every_module_has_a_layer():
    assert sorted(set(_modules()) - set(LAYER_OF)) == [], "add new modules to LAYERS"
    assert sorted(set(LAYER_OF) - set(_modules())) == []


def test_imports_go_down_the_layers():
    wrong = []
    for module in _modules():
        for target in sorted(_imports(module)):
            if target not in LAYER_OF:
                wrong.append(f"{module} imports unknown surveytune module {target}")
            elif LAYER_OF[target] > LAYER_OF[module]:
                wrong.append(f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {target} "
                             f"({LAYERS[LAYER_OF[target]][0]}), a higher layer")
    assert wrong == []


def test_no_import_cycles():
    graph = {module: _imports(module) & set(LAYER_OF) for module in _modules()}
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


def test_modules_stay_small():
    long = {}
    for module in _modules():
        lines = len((PACKAGE / f"{module}.py").read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and module not in LONG_MODULES:
            long[module] = lines
    assert long == {}, f"split these by job (at most {MAX_LINES} lines): {long}"


def test_the_checker_sees_lazy_imports(tmp_path, monkeypatch):
    (tmp_path / "low.py").write_text("def f():\n    from .high import x\n    return x\n")
    (tmp_path / "high.py").write_text("import surveytune.low\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert _imports("low") == {"high"} and _imports("high") == {"low"}
