"""The command line starts light: ``surveytune --help``, a command's ``--help`` and
``surveytune data check FILE`` import none of the heavy libraries (torch, transformers, peft,
scipy, pandas, matplotlib); the commands that need them import them when they run.

Each case runs ``python -m surveytune ...`` in a fresh interpreter (the modules a test process
has already imported would hide an import) and reads ``sys.modules`` at its end. Time is not
asserted: the modules are what makes startup slow, and they do not depend on a noisy machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

import surveytune

HEAVY = ("torch", "transformers", "peft", "scipy", "pandas", "matplotlib")
FIXTURES = REPO / "tests" / "fixtures"
MARK = "surveytune-startup-modules: "

REPORT = f"""
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print({MARK!r} + json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""
# Runs __main__ as `python -m surveytune ARGS` does, then reports what got imported.
MAIN = """
import json, runpy, sys
sys.argv = ["surveytune", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("surveytune", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
""" + REPORT


def _start(*args: str, code: str = MAIN) -> tuple[dict, subprocess.CompletedProcess]:
    """Run ``code`` with ``args`` in a fresh interpreter on this checkout: (its report, the
    finished process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith(MARK)]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len(MARK):]), done


@pytest.mark.parametrize("args", [
    ["--help"], ["data", "--help"], ["data", "check", "--help"], ["data", "splits", "--help"],
    ["data", "holdout", "--help"], ["baselines", "--help"], ["evaluate", "--help"],
    ["train", "--help"], ["predict", "--help"], ["reproduce", "--help"], ["report", "--help"],
], ids=" ".join)
def test_help_imports_no_heavy_library(args):
    report, done = _start(*args)
    assert report == {"code": 0, "heavy": []}
    assert "Usage:" in done.stdout


@pytest.mark.parametrize("name", ["loaders_generic.jsonl", "loaders_generic.csv",
                                  "loaders_wvs_unified.jsonl", "loaders_gss.jsonl",
                                  "loaders_paper_valid.json"])
def test_data_check_imports_no_heavy_library(name):
    report, done = _start("data", "check", FIXTURES / name)
    assert report == {"code": 0, "heavy": []}
    assert ": OK — " in done.stdout


def test_a_bad_file_is_one_line_without_heavy_libraries(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    report, done = _start("data", "check", bad)
    assert report == {"code": 2, "heavy": []}
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")]


def test_importing_the_package_and_the_cli_imports_no_heavy_library():
    code = ("import json, sys\n"
            "import surveytune, surveytune.cli.main, surveytune.data.items\n"
            "import surveytune.data.loaders\n"
            "code = 0\n" + REPORT)
    report, _ = _start(code=code)
    assert report == {"code": 0, "heavy": []}


def test_every_public_name_still_imports():
    for name in surveytune.__all__:
        assert getattr(surveytune, name) is not None, name
    assert set(surveytune.__all__) <= set(dir(surveytune))
    from surveytune import METRIC_NAMES, item_metrics, metrics_table, summarize
    from surveytune.methods.metrics import METRIC_NAMES as direct

    assert METRIC_NAMES is direct and callable(item_metrics) and callable(metrics_table)
    assert callable(summarize)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        surveytune.nope  # noqa: B018
