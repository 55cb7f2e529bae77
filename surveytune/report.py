"""Human-readable output: terminal tables now, results.md and report.html for studies."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from .items import DataError, atomic_write_text
from .metrics import METRIC_DESCRIPTIONS, METRIC_NAMES, item_metrics

REFERENCE_METHODS = ("uniform", "country-mean")
"""Every score is shown beside these (METHOD.md §5)."""


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
    """Print one metric for every (split, method), references first."""
    console = console or Console()
    frame = results_frame(rows, metric)
    better = "higher" if metric in ("1-jsd", "acc") else "lower"
    table = Table(title=f"{metric} ({better} is better)", caption=METRIC_DESCRIPTIONS[metric])
    table.add_column("split")
    table.add_column("n", justify="right")
    for method in frame.columns[1:]:
        table.add_column(method, justify="right")
    for split, row in frame.iterrows():
        table.add_row(str(split), str(int(row["n"])),
                      *[("" if pd.isna(v) else f"{v:.3f}") for v in row.iloc[1:]])
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


# ---------------------------------------------------------------------------------------------
# Study run reports: results.md and report.html from a run folder (see build_report).
# ---------------------------------------------------------------------------------------------

PAPER_TABLE4_COLUMNS = (("test_1", "C1-Q3"), ("test_2", "C2-Q1"), ("test_4", "C2-Q3"),
                        ("test_5", "C3-Q1"), ("test_7", "C3-Q3"))
"""The paper's Table 4 columns: our split name and the paper's country-set × question-range."""

PAPER_TABLE4: tuple[dict[str, Any], ...] = (
    {"model": "Llama3-8B-Instruct", "method": "zero-shot",
     "scores": {"test_1": 0.585, "test_2": 0.650, "test_4": 0.589, "test_5": 0.657,
                "test_7": 0.584}, "avg": 0.613},
    {"model": "Llama3-8B-Instruct", "method": "fine-tuned (best)",
     "scores": {"test_1": 0.777, "test_2": 0.881, "test_4": 0.783, "test_5": 0.890,
                "test_7": 0.784}, "avg": 0.823},
    {"model": "Vicuna-13B", "method": "fine-tuned",
     "scores": {"test_1": 0.781, "test_2": 0.869, "test_4": 0.781, "test_5": 0.882,
                "test_7": 0.781}, "avg": 0.819},
    {"model": "Distil-Qwen-14B", "method": "fine-tuned", "scores": {}, "avg": 0.826},
)
"""The paper's Table 4 (1-jsd, WVS, English prompt; METHOD.md §5). ``avg`` is as reported."""

PAPER_TABLE6_MODEL = "Llama3-8B-Instruct"
PAPER_TABLE6 = {"zero-shot": 0.617, "fine-tuned": 0.767}
"""The paper's Pew unseen-survey 1-jsd (Table 6), Llama3-8B-Instruct."""

METHOD_ORDER = ("uniform", "country-mean", "country-mean-loo", "ceiling", "zero-shot",
                "fine-tuned")
MODEL_METHODS = ("zero-shot", "fine-tuned")
METRICS_TABLE_METHODS = ("uniform", "country-mean", "zero-shot", "fine-tuned")
SPLIT_ORDER = ("train", "valid", "test_1", "test_2", "test_3", "test_4", "test_5", "test_6",
               "test_7", "goqa")
UNSEEN_SURVEY_DESCRIPTION = "unseen survey: GlobalOpinionQA Pew rows"
METHOD_DESCRIPTIONS = {
    "uniform": "every option equally likely",
    "country-mean": "per question, the mean distribution of the training countries",
    "country-mean-loo": "per question, the mean distribution of the OTHER populations of the "
                        "same split",
    "ceiling": "the human distribution resampled as a survey of about 1,200 respondents "
               "(an upper bound given sampling noise)",
    "zero-shot": "the language model before fine-tuning",
    "fine-tuned": "the language model after fine-tuning (checkpoint chosen on valid)",
}
SAMPLE_ITEM_SPLITS = ("test_2", "test_5")
"""Unseen-country splits the sample-item charts draw from first."""
N_SAMPLE_ITEMS = 6

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:2em auto;padding:0 1.2em;color:#1d2330;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #dde2ea;
 padding-bottom:.2em}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #d5dae3;padding:.3em .6em}th{background:#eef1f6;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.paper td{background:#faf6ea;color:#555}tr.ref td{background:#f4f6f9}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.summary dt{font-weight:600}dl.summary dd{margin:0}
p.note{color:#555;font-size:.92em}p.skip{color:#8a4b00;background:#fff5e6;padding:.5em .8em;
 border-left:4px solid #f0a040}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
"""


class _Tab:
    """A table to render as markdown or HTML: headers, rows of cells, and per-row CSS kinds."""

    def __init__(self, headers: Sequence[str], numeric: Sequence[bool] | None = None) -> None:
        self.headers = list(headers)
        self.numeric = list(numeric) if numeric is not None else [False] * len(headers)
        self.rows: list[list[str]] = []
        self.kinds: list[str] = []

    def add(self, cells: Sequence[Any], kind: str = "") -> None:
        self.rows.append(["" if c is None else str(c) for c in cells])
        self.kinds.append(kind)

    def markdown(self) -> str:
        def esc(text: str) -> str:
            return text.replace("|", "\\|")
        lines = ["| " + " | ".join(esc(h) for h in self.headers) + " |",
                 "|" + "|".join("---:" if n else "---" for n in self.numeric) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{_esc(h)}</th>" for h in self.headers)
        body = []
        for row, kind in zip(self.rows, self.kinds):
            cells = "".join(f'<td class="num">{_esc(c)}</td>' if n else f"<td>{_esc(c)}</td>"
                            for c, n in zip(row, self.numeric))
            attr = f' class="{kind}"' if kind else ""
            body.append(f"<tr{attr}>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _esc(text: Any) -> str:
    import html
    return html.escape(str(text), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    """A score as printed in every table: three decimals, empty when missing."""
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return ""
    return f"{number:.{digits}f}"


def _split_sort_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), split)


def _method_sort_key(method: str) -> tuple[int, str]:
    return ((METHOD_ORDER.index(method), "") if method in METHOD_ORDER
            else (len(METHOD_ORDER), method))


def split_description(split: str) -> str:
    """What a split holds, for reports."""
    from .splits import SPLIT_DESCRIPTIONS
    from .study import UNSEEN_SURVEY

    if split == UNSEEN_SURVEY:
        return UNSEEN_SURVEY_DESCRIPTION
    return SPLIT_DESCRIPTIONS.get(split, "")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON: {error}", file=path, line=error.lineno) from None


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The contents of ``results.json`` of a run folder, checked.

    Raises :class:`~surveytune.items.DataError` naming the file when it is missing or has no
    ``results`` list.
    """
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise DataError("no results.json: is this a finished surveytune run?", file=path)
    run = _read_json(path)
    if not isinstance(run, dict) or not isinstance(run.get("results"), list):
        raise DataError("expected an object with a 'results' list", file=path, field="results")
    for number, row in enumerate(run["results"]):
        for key in ("method", "split", "n", "1-jsd"):
            if not isinstance(row, dict) or key not in row:
                raise DataError(f"result row {number} has no {key!r}", file=path,
                                field="results")
    run.setdefault("diversity", [])
    run["budget"] = run.get("budget") or {}
    run["model"] = run.get("model") or "(model not recorded)"
    run["note"] = run.get("note") or ""
    run.setdefault("eval_items_per_split", None)
    run.setdefault("question_fraction", None)
    return run


def load_predictions(run_dir: str | os.PathLike, method: str) -> pd.DataFrame:
    """All ``predictions/{method}/*.jsonl`` rows of a run as one frame (empty if none).

    Columns: those of the files plus ``method``; ``1-jsd`` is computed when a row lacks it.
    """
    folder = Path(run_dir) / "predictions" / method
    records = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"not valid JSON: {error.msg}", file=path,
                                    line=number) from None
                for key in ("id", "human", "predicted"):
                    if key not in record:
                        raise DataError("missing", file=path, line=number, field=key)
                record.setdefault("split", path.stem)
                if record.get("1-jsd") is None:
                    record["1-jsd"] = item_metrics(record["human"], record["predicted"])["1-jsd"]
                records.append(record)
    frame = pd.DataFrame(records)
    if not frame.empty:
        frame["method"] = method
        for key in ("population", "question_id", "question"):
            if key not in frame.columns:
                frame[key] = ""
        if "options" not in frame.columns:
            frame["options"] = [None] * len(frame)
    return frame


def load_training(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``train/training.json`` of a run, or None when the run has none."""
    path = Path(run_dir) / "train" / "training.json"
    return _read_json(path) if path.is_file() else None


# --- tables --------------------------------------------------------------------------------

def _scores(run: dict[str, Any], metric: str = "1-jsd") -> dict[str, dict[str, float]]:
    """method -> split -> value."""
    out: dict[str, dict[str, float]] = {}
    for row in run["results"]:
        value = row.get(metric)
        if value is not None:
            out.setdefault(row["method"], {})[row["split"]] = float(value)
    return out


def _methods(run: dict[str, Any]) -> list[str]:
    return sorted({row["method"] for row in run["results"]}, key=_method_sort_key)


def _splits(run: dict[str, Any]) -> list[str]:
    return sorted({row["split"] for row in run["results"]}, key=_split_sort_key)


def _split_n(run: dict[str, Any]) -> dict[str, str]:
    """split -> item count as printed (a range when methods were scored on different counts)."""
    counts: dict[str, set[int]] = {}
    for row in run["results"]:
        counts.setdefault(row["split"], set()).add(int(row["n"]))
    return {s: (str(min(c)) if len(c) == 1 else f"{min(c)}-{max(c)}") for s, c in counts.items()}


def _row_kind(method: str) -> str:
    return "" if method in MODEL_METHODS else "ref"


def table4(run: dict[str, Any]) -> _Tab:
    """The paper's Table 4 layout: the paper's rows, then this run's rows for every method."""
    n = _split_n(run)
    headers = ["model", "method", "source"]
    headers += [f"{split} {paper}" + (f" (n={n[split]})" if split in n else "")
                for split, paper in PAPER_TABLE4_COLUMNS]
    headers.append("avg")
    tab = _Tab(headers, [False] * 3 + [True] * (len(PAPER_TABLE4_COLUMNS) + 1))
    for row in PAPER_TABLE4:
        tab.add([row["model"], row["method"], "paper, reported",
                 *[_fmt(row["scores"].get(split)) for split, _ in PAPER_TABLE4_COLUMNS],
                 _fmt(row["avg"])], "paper")
    scores = _scores(run)
    for method in _methods(run):
        values = [scores[method].get(split) for split, _ in PAPER_TABLE4_COLUMNS]
        present = [v for v in values if v is not None]
        avg = _fmt(sum(present) / len(present)) if present else ""
        if present and len(present) < len(values):
            avg += f" ({len(present)} of {len(values)})"
        model = run["model"] if method in MODEL_METHODS else "(baseline, no model)"
        tab.add([model, method, "this run", *[_fmt(v) for v in values], avg], _row_kind(method))
    return tab


def splits_table(run: dict[str, Any]) -> _Tab:
    """1-jsd of every method on every split, with n and what the split holds."""
    methods = _methods(run)
    n = _split_n(run)
    scores = _scores(run)
    tab = _Tab(["split", "holds", "n", *methods], [False, False, True] + [True] * len(methods))
    for split in _splits(run):
        tab.add([split, split_description(split), n[split],
                 *[_fmt(scores[m].get(split)) for m in methods]])
    return tab


def _test_splits(run: dict[str, Any]) -> list[str]:
    return [s for s in _splits(run) if s.startswith("test")]


def metrics_average_table(run: dict[str, Any]) -> tuple[_Tab, list[str]]:
    """Every metric, item-weighted over the test splits all the shown methods were scored on."""
    methods = [m for m in METRICS_TABLE_METHODS if m in _methods(run)]
    by_method: dict[str, dict[str, dict]] = {}
    for row in run["results"]:
        by_method.setdefault(row["method"], {})[row["split"]] = row
    common = [s for s in _test_splits(run) if all(s in by_method.get(m, {}) for m in methods)]
    tab = _Tab(["method", "n", *METRIC_NAMES], [False] + [True] * (1 + len(METRIC_NAMES)))
    for method in methods:
        rows = [by_method[method][s] for s in common]
        total = sum(int(r["n"]) for r in rows)
        cells = []
        for metric in METRIC_NAMES:
            pairs = [(float(r[metric]), int(r["n"])) for r in rows if r.get(metric) is not None]
            weight = sum(w for _, w in pairs)
            ok = pairs and len(pairs) == len(rows) and weight
            cells.append(_fmt(sum(v * w for v, w in pairs) / weight) if ok else "")
        tab.add([method, total, *cells], _row_kind(method))
    return tab, common


def _diversity(run: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """split -> source (human / zero-shot / fine-tuned) -> {measure: value}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in run.get("diversity") or []:
        split, source = row.get("split"), row.get("method")
        if split is None or source is None:
            continue
        out.setdefault(split, {})[source] = {
            k: row.get(k) for k in ("between_population_1-jsd", "mean_normalised_entropy")}
    return out


DIVERSITY_SOURCES = ("human", "zero-shot", "fine-tuned")


def diversity_table(run: dict[str, Any]) -> _Tab | None:
    data = _diversity(run)
    if not data:
        return None
    sources = [s for s in DIVERSITY_SOURCES if any(s in v for v in data.values())]
    headers = ["split", *[f"between-population 1-jsd: {s}" for s in sources],
               *[f"mean normalised entropy: {s}" for s in sources]]
    tab = _Tab(headers, [False] + [True] * (2 * len(sources)))
    for split in sorted(data, key=_split_sort_key):
        row = data[split]
        tab.add([split,
                 *[_fmt(row.get(s, {}).get("between_population_1-jsd")) for s in sources],
                 *[_fmt(row.get(s, {}).get("mean_normalised_entropy")) for s in sources]])
    return tab


def pew_table(run: dict[str, Any]) -> _Tab | None:
    """The unseen-survey split beside the paper's Table 6."""
    from .study import UNSEEN_SURVEY

    scores = _scores(run)
    if not any(UNSEEN_SURVEY in v for v in scores.values()):
        return None
    n = _split_n(run).get(UNSEEN_SURVEY, "")
    tab = _Tab(["method", f"paper, reported ({PAPER_TABLE6_MODEL}, Table 6)",
                f"this run ({UNSEEN_SURVEY}, n={n})"], [False, True, True])
    for method in _methods(run):
        if UNSEEN_SURVEY in scores[method]:
            tab.add([method, _fmt(PAPER_TABLE6.get(method)),
                     _fmt(scores[method][UNSEEN_SURVEY])], _row_kind(method))
    return tab


def _subsample_sentence(run: dict[str, Any]) -> str:
    count = run.get("eval_items_per_split")
    fraction = run.get("question_fraction")
    parts = []
    if fraction is not None:
        parts.append(f"This is a smaller study on a seeded {fraction:.0%} of the WVS questions "
                     "(the same questions in training and every test split; valid whole)")
    if count is not None:
        parts.append(f"scores are on a seeded subsample of {count} items per split")
    if not parts:
        return "Scores are on the full splits."
    sentence = "; ".join(parts)
    return (sentence[0].upper() + sentence[1:] + ", so the numbers are not comparable with the "
            "paper's at that precision.")


def _budget_text(budget: dict[str, Any]) -> str:
    if not budget:
        return "(not recorded)"
    name = budget.get("name", "")
    if budget.get("description"):  # a study budget: its own words say what it ran
        return f"{name}: {budget['description']} (full configuration in results.json)"
    rest = ", ".join(f"{k}={v}" for k, v in budget.items() if k != "name")
    return f"{name} ({rest})" if rest else str(name)


PEW_CAVEAT = ("The paper's Pew test file also holds 1,446 WVS rows; ours has them removed "
              "(METHOD.md §4), so the two sets of items differ.")
DIVERSITY_SENTENCE = ("Between-population 1-jsd: per question, the mean pairwise 1-jsd between "
                      "populations' distributions (higher = populations more alike). A model "
                      "whose value is above the humans' treats countries as more alike than "
                      "they are; an entropy above the humans' means flatter predictions.")


def findings(run: dict[str, Any], metric: str = "1-jsd") -> list[str]:
    """One sentence per split: how fine-tuned compares with zero-shot and the baselines.

    Written from the numbers (nothing is hard-coded), so a reader sees at once whether the
    run meets the paper's claims, e.g. on the unseen-country splits test_2 and test_5.
    """
    scores = _scores(run, metric)
    tuned = scores.get("fine-tuned", {})
    lines = []
    for split in _splits(run):
        if split not in tuned:
            continue
        value = tuned[split]
        beats, below = [], []
        for other in ("zero-shot", "uniform", "country-mean"):
            if split in scores.get(other, {}):
                ref = scores[other][split]
                (beats if value > ref else below).append(f"{other} {_fmt(ref)}")
        verdict = []
        if beats:
            verdict.append("beats " + ", ".join(beats))
        if below:
            verdict.append("is not above " + ", ".join(below))
        lines.append(f"{split} ({split_description(split)}): fine-tuned {_fmt(value)} "
                     + "; ".join(verdict) + ".")
    return lines


def _sections(run: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The tables and sentences both outputs share: (heading, [("p"|"note"|"table", x)])."""
    metrics_tab, common = metrics_average_table(run)
    test_text = ", ".join(common) if common else "none"
    found = findings(run)
    sections: list[tuple[str, list[tuple[str, Any]]]] = [
        ("Findings: fine-tuned vs zero-shot and the baselines (1-jsd)",
         [("list", found)] if found else [("skip", "No fine-tuned results in this run.")]),
        ("Paper Table 4 layout: 1-jsd (higher is better)", [
            ("p", f"Metric `1-jsd`: {METRIC_DESCRIPTIONS['1-jsd']}. Rows marked "
                  "\"paper, reported\" are the paper's numbers; rows marked \"this run\" are "
                  f"ours (model: {run['model']}). avg is the unweighted mean of the five "
                  "columns, as in the paper."),
            ("table", table4(run)),
            ("note", f"Test rows: {run['note'] or '(not recorded)'}"),
            ("note", _subsample_sentence(run)),
        ]),
        ("1-jsd on every split", [
            ("p", "Every model score beside the baselines `uniform` and `country-mean`. "
                  + " ".join(f"`{m}`: {METHOD_DESCRIPTIONS[m]}." for m in _methods(run)
                             if m in METHOD_DESCRIPTIONS)),
            ("table", splits_table(run)),
        ]),
        ("All metrics, averaged over the test splits", [
            ("p", f"Item-weighted means over the test splits every row was scored on "
                  f"({test_text})."),
            ("table", metrics_tab),
            ("legend", {m: METRIC_DESCRIPTIONS[m] for m in METRIC_NAMES}),
        ]),
    ]
    div = diversity_table(run)
    sections.append(("Diversity: humans vs the model", [
        ("p", DIVERSITY_SENTENCE), ("table", div)] if div is not None else
        [("skip", "No diversity measures in results.json.")]))
    pew = pew_table(run)
    sections.append(("Unseen survey (Pew) vs the paper's Table 6", [
        ("table", pew), ("note", PEW_CAVEAT)] if pew is not None else
        [("skip", "No goqa (unseen survey) results in this run.")]))
    return sections


def _markdown(run: dict[str, Any], run_dir: Path) -> str:
    lines = [f"# surveytune results: {run_dir.name}", "",
             f"- model: {run['model']}",
             f"- budget: {_budget_text(run['budget'])}",
             f"- test rows: {run['note'] or '(not recorded)'}",
             f"- evaluation: {_subsample_sentence(run)}", ""]
    for heading, blocks in _sections(run):
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


def write_results_md(run_dir: str | os.PathLike) -> Path:
    """Write ``results.md`` into the run folder from its results.json; return its path."""
    run_dir = Path(run_dir).resolve()
    run = load_run(run_dir)
    path = run_dir / "results.md"
    atomic_write_text(path, _markdown(run, run_dir))
    return path


# --- charts --------------------------------------------------------------------------------

_COLOURS = {"human": "#333333", "zero-shot": "#e07b39", "fine-tuned": "#3b75af",
            "uniform": "#9aa3ad"}


def _png(figure: Any) -> str:
    """A matplotlib Figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight",
                   metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matplotlib.rcParams["text.parse_math"] = False  # labels quote survey text: "$" is literal
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _short(text: Any, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _stable_order(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()


def sample_items(predictions: dict[str, pd.DataFrame], count: int = N_SAMPLE_ITEMS
                 ) -> list[tuple[str, str]]:
    """A deterministic spread of (split, id) keys: unseen-country splits first, one item per
    country and question where possible, preferring items every method predicted."""
    frames = [f for f in predictions.values() if not f.empty]
    if not frames:
        return []
    keys = [set(zip(f["split"], f["id"])) for f in frames]
    both = set.intersection(*keys)
    base = frames[0].drop_duplicates(["split", "id"])
    base = base.assign(_both=[(s, i) in both for s, i in zip(base["split"], base["id"])],
                       _pref=[s in SAMPLE_ITEM_SPLITS for s in base["split"]],
                       _order=[_stable_order(f"{s}/{i}") for s, i in
                               zip(base["split"], base["id"])])
    base = base.sort_values(["_both", "_pref", "_order"], ascending=[False, False, True])
    chosen: list[tuple[str, str]] = []
    used_pop: set[str] = set()
    used_q: set[str] = set()
    for strict in (2, 1, 0):  # distinct country and question, then country, then anything
        for row in base.itertuples(index=False):
            key = (row.split, row.id)
            if len(chosen) >= count:
                break
            if key in chosen or row.id in {i for _, i in chosen}:
                continue  # Nigeria and Morocco items are in two splits under one id
            if strict >= 1 and str(row.population) in used_pop:
                continue
            if strict >= 2 and str(row.question_id) in used_q:
                continue
            chosen.append(key)
            used_pop.add(str(row.population))
            used_q.add(str(row.question_id))
    return chosen


def chart_sample_items(predictions: dict[str, pd.DataFrame]) -> str | None:
    keys = sample_items(predictions)
    if not keys:
        return None
    methods = [m for m in MODEL_METHODS if not predictions[m].empty]
    indexed = {m: predictions[m].drop_duplicates(["split", "id"]).set_index(["split", "id"])
               for m in methods}
    cols = 3 if len(keys) > 2 else len(keys)
    rows = math.ceil(len(keys) / cols)
    figure = _figure(5.0 * cols, 4.3 * rows)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        first = next(indexed[m].loc[key] for m in methods if key in indexed[m].index)
        human = list(first["human"])
        options = first["options"] if isinstance(first["options"], list) else []
        labels = [_short(options[i], 14) if i < len(options) else chr(65 + i)
                  for i in range(len(human))]
        series = [("human", human)]
        series += [(m, list(indexed[m].loc[key]["predicted"])) for m in methods
                   if key in indexed[m].index]
        width = 0.8 / len(series)
        for j, (name, values) in enumerate(series):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(values))]
            ax.bar(xs, values, width, label=name, color=_COLOURS[name])
        ax.set_xticks(range(len(human)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("share")
        title = (f"{first['population']} · {first['question_id']} ({key[0]})\n"
                 f"{_short(first['question'], 60)}")
        ax.set_title(title, fontsize=8.5)
        ax.tick_params(axis="y", labelsize=7)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def _matched(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    zs = predictions["zero-shot"][["split", "id", "population", "1-jsd"]]
    ft = predictions["fine-tuned"][["split", "id", "1-jsd"]]
    return zs.merge(ft, on=["split", "id"], suffixes=("_zs", "_ft"))


def chart_scatter(predictions: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """(data URI, caption) of per-item zero-shot vs fine-tuned 1-jsd."""
    matched = _matched(predictions)
    figure = _figure(6.5, 6.0)
    ax = figure.subplots()
    from matplotlib import colormaps

    splits = sorted(matched["split"].unique(), key=_split_sort_key)
    cmap = colormaps["tab10"]
    for index, split in enumerate(splits):
        part = matched[matched["split"] == split]
        ax.scatter(part["1-jsd_zs"], part["1-jsd_ft"], s=9, alpha=0.6, color=cmap(index % 10),
                   label=f"{split} ({len(part)})")
    low = float(min(matched["1-jsd_zs"].min(), matched["1-jsd_ft"].min(), 0.5))
    ax.plot([low, 1], [low, 1], color="#888888", linewidth=1, linestyle="--")
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1)
    ax.set_xlabel("zero-shot 1-jsd")
    ax.set_ylabel("fine-tuned 1-jsd")
    ax.set_title("Per item: fine-tuned vs zero-shot (above the line = fine-tuning helped)",
                 fontsize=9)
    ax.legend(fontsize=7, markerscale=1.5)
    figure.tight_layout()
    better = int((matched["1-jsd_ft"] > matched["1-jsd_zs"]).sum())
    caption = (f"{len(matched)} items scored by both (matched by split and id); fine-tuned is "
               f"better on {better} of them.")
    return _png(figure), caption


def _uniform_score(human: Sequence[float]) -> float:
    """1-jsd of the uniform prediction for one human distribution (as in metrics.py)."""
    from scipy.spatial.distance import jensenshannon

    p = [float(v) for v in human]
    distance = float(jensenshannon(p, [1.0 / len(p)] * len(p)))
    return 1.0 - (0.0 if math.isnan(distance) else distance)


def chart_per_country(predictions: dict[str, pd.DataFrame]) -> tuple[str, str] | None:
    """Mean 1-jsd per population on the test splits, for each model and uniform."""
    methods = [m for m in MODEL_METHODS if not predictions[m].empty]
    frames = {m: predictions[m][predictions[m]["split"].astype(str).str.startswith("test")]
              for m in methods}
    frames = {m: f for m, f in frames.items() if not f.empty}
    if not frames:
        return None
    means = pd.DataFrame({m: f.groupby("population")["1-jsd"].mean()
                          for m, f in frames.items()})
    base = pd.concat(frames.values()).drop_duplicates(["split", "id"])
    means["uniform"] = base.assign(u=[_uniform_score(h) for h in base["human"]]
                                   ).groupby("population")["u"].mean()
    order_by = "fine-tuned" if "fine-tuned" in means else methods[0]
    means = means.sort_values(order_by)
    height = max(3.0, 0.19 * len(means) + 1.2)
    figure = _figure(8.0, height)
    ax = figure.subplots()
    series = [m for m in MODEL_METHODS if m in means]
    bar = 0.8 / len(series)
    ys = list(range(len(means)))
    for j, method in enumerate(series):
        ax.barh([y + (j - (len(series) - 1) / 2) * bar for y in ys], means[method], bar,
                color=_COLOURS[method], label=method)
    ax.scatter(means["uniform"], ys, marker="|", s=60, color="#000000", label="uniform",
               zorder=3)
    ax.set_yticks(ys)
    ax.set_yticklabels([_short(p, 24) for p in means.index], fontsize=7)
    lo = float(means.min().min())
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    ax.set_xlabel("mean 1-jsd over the population's test items (higher is better)")
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    caption = (f"{len(means)} populations, sorted by {order_by} 1-jsd; test splits only. "
               "`uniform` is computed from the human distributions in the prediction files. "
               "`country-mean` is not shown: its per-item predictions are not in the run "
               "folder.")
    return _png(figure), caption


def chart_diversity(run: dict[str, Any]) -> str | None:
    data = _diversity(run)
    if not data:
        return None
    splits = sorted(data, key=_split_sort_key)
    sources = [s for s in DIVERSITY_SOURCES if any(s in data[sp] for sp in splits)]
    figure = _figure(max(7.0, 0.9 * len(splits) + 3), 6.4)
    axes = figure.subplots(2, 1)
    measures = (("between_population_1-jsd", "between-population 1-jsd\n(higher = more alike)"),
                ("mean_normalised_entropy", "mean normalised entropy\n(higher = flatter)"))
    width = 0.8 / len(sources)
    for ax, (key, label) in zip(axes, measures):
        for j, source in enumerate(sources):
            values = [data[sp].get(source, {}).get(key) for sp in splits]
            xs = [i + (j - (len(sources) - 1) / 2) * width for i in range(len(splits))]
            ax.bar(xs, [math.nan if v is None else v for v in values], width, label=source,
                   color=_COLOURS[source])
        ax.set_xticks(range(len(splits)))
        ax.set_xticklabels(splits, fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7, ncol=len(sources))
    figure.tight_layout()
    return _png(figure)


def chart_training(training: dict[str, Any]) -> str | None:
    history = training.get("history") or []
    train_loss = training.get("train_loss") or []
    if not history and not train_loss:
        return None
    figure = _figure(9.0, 3.8)
    left, right = figure.subplots(1, 2)
    best = training.get("best_step")
    if train_loss:
        steps, losses = zip(*[(s, v) for s, v in train_loss])
        left.plot(steps, losses, color="#b8c4d6", linewidth=0.8, label="train loss (batch)")
    for ax, key, label, ylabel in ((left, "valid_loss", "valid loss", "KL loss"),
                                   (right, "valid_1-jsd", "valid 1-jsd",
                                    "valid 1-jsd (higher is better)")):
        points = [h for h in history if h.get(key) is not None]
        if points:
            ax.plot([h["step"] for h in points], [h[key] for h in points], marker="o",
                    markersize=3, color=_COLOURS["fine-tuned"], label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
    if best is not None:
        for ax in (left, right):
            ax.axvline(best, color="#c0392b", linestyle="--", linewidth=1,
                       label=f"best step {best}")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


# --- HTML ----------------------------------------------------------------------------------

def _figure_html(uri: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{_esc(alt)}">{cap}</figure>'


def _skip_html(text: str) -> str:
    return f'<p class="skip">Chart skipped: {_esc(text)}</p>'


def _inline_code(text: str) -> str:
    """HTML for a sentence with `code` spans."""
    parts = _esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _charts_html(run: dict[str, Any], run_dir: Path) -> list[str]:
    predictions = {m: load_predictions(run_dir, m) for m in MODEL_METHODS}
    have = {m: not predictions[m].empty for m in MODEL_METHODS}
    out = ["<h2>Charts</h2>"]

    out.append("<h3>Sample items: predicted vs human</h3>")
    if not any(have.values()):
        out.append(_skip_html("no zero-shot or fine-tuned predictions in predictions/ yet."))
    else:
        uri = chart_sample_items(predictions)
        missing = [m for m in MODEL_METHODS if not have[m]]
        caption = (f"{N_SAMPLE_ITEMS} items chosen deterministically, from the unseen-country "
                   f"splits ({', '.join(SAMPLE_ITEM_SPLITS)}) when they are present, one "
                   "country each.")
        if missing:
            caption += f" No {' or '.join(missing)} predictions yet, so not shown."
        out.append(_figure_html(uri, "predicted vs human answer shares", caption)
                   if uri else _skip_html("no items to show."))

    out.append("<h3>Per item: zero-shot vs fine-tuned 1-jsd</h3>")
    missing = [m for m in MODEL_METHODS if not have[m]]
    if missing:
        out.append(_skip_html(f"no {' or '.join(missing)} predictions yet "
                              f"(predictions/{missing[0]}/ is empty or missing)."))
    elif _matched(predictions).empty:
        out.append(_skip_html("no item was predicted by both zero-shot and fine-tuned."))
    else:
        uri, caption = chart_scatter(predictions)
        out.append(_figure_html(uri, "per-item scatter", caption))

    out.append("<h3>Error per country</h3>")
    result = chart_per_country(predictions) if any(have.values()) else None
    if result is None:
        out.append(_skip_html("no model predictions on a test split yet."))
    else:
        uri, caption = result
        if missing:
            caption += f" No {' or '.join(missing)} predictions yet."
        out.append(_figure_html(uri, "mean 1-jsd per country", caption))

    out.append("<h3>Diversity: humans vs the model</h3>")
    uri = chart_diversity(run)
    out.append(_figure_html(uri, "diversity", DIVERSITY_SENTENCE) if uri else
               _skip_html("no diversity measures in results.json."))

    out.append("<h3>Training curve</h3>")
    training = load_training(run_dir)
    if training is None:
        out.append(_skip_html("no train/training.json (this run did not fine-tune, or the "
                              "training has not finished)."))
    else:
        uri = chart_training(training)
        best = training.get("best_step")
        caption = ("Valid loss and valid 1-jsd by step"
                   + (f"; the checkpoint kept is from step {best} (dashed line)."
                      if best is not None else "."))
        out.append(_figure_html(uri, "training curve", caption) if uri else
                   _skip_html("train/training.json has no history."))
    return out


def _html(run: dict[str, Any], run_dir: Path) -> str:
    title = f"surveytune report: {run_dir.name}"
    summary = [("model", run["model"]), ("budget", _budget_text(run["budget"])),
               ("test rows", run["note"] or "(not recorded)"),
               ("evaluation", _subsample_sentence(run)),
               ("methods", ", ".join(_methods(run))),
               ("run folder", str(run_dir))]
    body = [f"<h1>{_esc(title)}</h1>",
            "<p>How well the model simulates populations' survey answer distributions, "
            "beside the baselines and the paper's reported numbers.</p>",
            '<dl class="summary">' + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>"
                                             for k, v in summary) + "</dl>"]
    for heading, blocks in _sections(run):
        body.append(f"<h2>{_esc(heading)}</h2>")
        for kind, content in blocks:
            if kind == "table":
                body.append(content.html())
            elif kind == "legend":
                body.append("<ul>" + "".join(f"<li><code>{_esc(k)}</code>: {_esc(v)}</li>"
                                             for k, v in content.items()) + "</ul>")
            elif kind == "list":
                body.append("<ul>" + "".join(f"<li>{_esc(t)}</li>" for t in content) + "</ul>")
            elif kind == "skip":
                body.append(f'<p class="skip">{_esc(content)}</p>')
            else:
                css = ' class="note"' if kind == "note" else ""
                body.append(f"<p{css}>{_inline_code(content)}</p>")
    body += _charts_html(run, run_dir)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report_html(run_dir: str | os.PathLike) -> Path:
    """Write a self-contained ``report.html`` (inline CSS, embedded PNG charts) into the run
    folder; return its path."""
    run_dir = Path(run_dir).resolve()
    run = load_run(run_dir)
    path = run_dir / "report.html"
    atomic_write_text(path, _html(run, run_dir))
    return path


def build_report(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``results.md`` and ``report.html`` for a run folder (``surveytune report RUN_DIR``).

    Raises :class:`~surveytune.items.DataError` when the folder has no results.json.
    """
    run_dir = Path(run_dir).resolve()
    run = load_run(run_dir)
    # Render both before writing either, so a failure leaves the old pair untouched.
    markdown, html = _markdown(run, run_dir), _html(run, run_dir)
    atomic_write_text(run_dir / "results.md", markdown)
    atomic_write_text(run_dir / "report.html", html)
    return run_dir / "results.md", run_dir / "report.html"


__all__ = ["METRIC_NAMES", "PAPER_TABLE4", "PAPER_TABLE4_COLUMNS", "PAPER_TABLE6",
           "PAPER_TABLE6_MODEL", "build_report", "distribution_table", "load_predictions",
           "load_run", "load_training", "results_frame", "results_table", "write_report_html",
           "write_results_md"]
