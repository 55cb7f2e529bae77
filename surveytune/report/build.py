"""A run's report: ``results.md`` and ``report.html`` from its run folder.

The report is split by job: :mod:`~surveytune.report.sections` (the tables and sentences
both files say), :mod:`~surveytune.report.charts`, :mod:`~surveytune.report.html`, and here the
markdown and :func:`build_report`. It reads the run folder through
:mod:`surveytune.data.records` only and recomputes nothing. Terminal tables are in
:mod:`~surveytune.report.tables`, re-exported here, as before the split. A study's own
sections come in as :class:`~surveytune.report.sections.StudySections` from whoever builds
the report (the study runner, ``surveytune report``), looked up by the run's study.
"""

from __future__ import annotations

import os
from pathlib import Path

from surveytune.data.files import atomic_write_text
from surveytune.data.records import RunResults
from surveytune.methods.metrics import METRIC_NAMES
from surveytune.report.charts import load_predictions, sample_items, uniform_score
from surveytune.report.html import render_html
from surveytune.report.sections import (
    StudySections,
    budget_text,
    findings,
    model_name,
    sections,
    setup_text,
    subsample_sentence,
)
from surveytune.report.tables import distribution_table, results_frame, results_table


def render_markdown(run: RunResults, run_dir: Path,
                    study: StudySections = StudySections()) -> str:
    """``results.md``: a header, then every section."""
    lines = [f"# surveytune results: {run_dir.name}", "",
             f"- model: {model_name(run)}",
             f"- budget: {budget_text(run.budget)}",
             f"- setup: {setup_text(run)}",
             f"- test rows: {run.note or '(not recorded)'}",
             f"- evaluation: {subsample_sentence(run)}", ""]
    for heading, blocks in sections(run, study):
        lines += [f"## {heading}", ""]
        for kind, content in blocks:
            if kind == "table":
                lines.append(content.markdown())
            elif kind == "legend":
                lines += [f"- `{name}`: {text}" for name, text in content.items()]
                lines.append("")
            elif kind == "list":
                lines += [f"- {text}" for text in content] + [""]
            else:
                lines += [content, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_results_md(run_dir: str | os.PathLike,
                     study: StudySections = StudySections()) -> Path:
    """Write ``results.md`` into the run folder from its results.json; return its path."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / "results.md"
    atomic_write_text(path, render_markdown(RunResults.read(run_dir), run_dir, study))
    return path


def build_report(run_dir: str | os.PathLike,
                 study: StudySections = StudySections()) -> tuple[Path, Path]:
    """``results.md`` and ``report.html`` for a run folder (``surveytune report RUN_DIR``),
    with ``study``'s own sections and words for its splits.

    Raises :class:`~surveytune.data.items.DataError` when the folder has no results.json.
    """
    run_dir = Path(run_dir).resolve()
    run = RunResults.read(run_dir)
    # Render both before writing either, so a failure leaves the old pair untouched.
    markdown, html = render_markdown(run, run_dir, study), render_html(run, run_dir, study)
    atomic_write_text(run_dir / "results.md", markdown)
    atomic_write_text(run_dir / "report.html", html)
    return run_dir / "results.md", run_dir / "report.html"


__all__ = ["METRIC_NAMES", "StudySections", "build_report", "distribution_table", "findings",
           "load_predictions", "render_markdown", "results_frame", "results_table",
           "sample_items", "uniform_score", "write_results_md"]
