"""Terminal tables: result rows and predicted shares, printed with rich."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from surveytune.methods.metrics import METRIC_DESCRIPTIONS


def results_frame(rows: Sequence[dict[str, Any]], metric: str = "1-jsd") -> pd.DataFrame:
    """Splits as rows, methods as columns, one metric's values."""
    frame = pd.DataFrame(list(rows))
    table = frame.pivot_table(index="split", columns="method", values=metric, sort=False)
    counts = frame.groupby("split", sort=False)["n"].first()
    table.insert(0, "n", counts)
    methods = list(dict.fromkeys(frame["method"]))
    return table[["n", *methods]]


def results_table(rows: Sequence[dict[str, Any]], metric: str = "1-jsd",
                  console: Console | None = None) -> None:
    """Print one metric for every (method, split): methods as rows (baselines first), splits
    as columns, the item counts on the first row."""
    console = console or Console()
    frame = results_frame(rows, metric)
    better = "higher" if metric in ("1-jsd", "acc") else "lower"
    table = Table(title=f"{metric} ({better} is better)", caption=METRIC_DESCRIPTIONS[metric])
    table.add_column("method", no_wrap=True)
    for split in frame.index:
        table.add_column(str(split), justify="right")
    table.add_row("n (items)", *[str(int(n)) for n in frame["n"]], end_section=True)
    for method in frame.columns[1:]:
        table.add_row(str(method), *[("" if pd.isna(v) else f"{v:.3f}")
                                     for v in frame[method]])
    console.print(table)


def distribution_table(table: pd.DataFrame, title: str = "",
                       console: Console | None = None) -> None:
    """Print predicted shares per population as percentages."""
    console = console or Console()
    out = Table(title=title)
    out.add_column(str(table.index.name or ""))
    for column in table.columns:
        out.add_column(str(column), justify="right")
    for name, row in table.iterrows():
        out.add_row(str(name), *[f"{100 * v:.1f}%" for v in row.values])
    console.print(out)
    if "letter_mass" in table.columns:
        console.print("letter_mass: the next-token probability the option letters got before "
                      "renormalising.")


def scorecard_table(frame: pd.DataFrame, title: str = "", console: Console | None = None,
                    metric: str = "1-jsd") -> None:
    """Print a scorecard (:func:`surveytune.methods.scorecard.scorecard` rows): per split, each
    method's n, questions and ``metric``, and for each baseline the model's paired difference
    with its interval over questions and the verdict."""
    console = console or Console()
    for split, rows in frame.groupby("split", sort=False):
        out = Table(title=f"{title}: {split}" if title else str(split))
        out.add_column("method", overflow="fold")  # names whole, on two lines if need be
        for column in ("n", "questions", metric):
            out.add_column(column, justify="right")
        level = rows["level"].dropna()
        share = f"{level.iloc[0]:.0%}" if len(level) else ""
        out.add_column("model - it", justify="right")
        out.add_column(f"{share} interval", justify="right")
        out.add_column("model is")
        for row in rows.to_dict(orient="records"):
            versus = row.get("difference")
            known = versus is not None and versus == versus
            verdict = row.get("verdict") if isinstance(row.get("verdict"), str) else ""
            name = row["method"] + (" (reference)" if row["kind"] == "reference" else "")
            out.add_row(name, str(row["n"]), str(row["questions"]), f"{row[metric]:.3f}",
                        f"{versus:+.3f}" if known else "",
                        f"[{row['low']:+.3f}, {row['high']:+.3f}]" if known else "",
                        {"met": "better", "tied": "tied", "missed": "WORSE"}.get(verdict, ""))
        console.print(out)
    console.print(f"{metric}: higher is better. An interval resamples whole questions "
                  "(a question's populations are not independent); 'better' only when it "
                  "lies above 0.")
