"""What results.md and report.html both say: the tables and sentences of a run's report.

Built from a run's :class:`~surveytune.data.records.RunResults` only; method and split names,
order and descriptions come from ``methods.baselines`` and ``data.splits``. :func:`sections`
lists them in order; ``report.build`` writes them as markdown, ``report.html`` as HTML. What
only one study says (the WVS study's goals and paper tables, the GSS study's Wasserstein
table) comes from that study as :class:`StudySections`; the report imports no study.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from surveytune.data.records import RunResults
from surveytune.data.splits import split_description, split_sort_key
from surveytune.methods.baselines import (
    FINE_TUNED,
    MODEL_METHODS,
    ZERO_SHOT,
    competitor_names,
    method_description,
    method_sort_key,
)
from surveytune.methods.metrics import METRIC_DESCRIPTIONS, METRIC_NAMES


def diversity_sources() -> tuple[str, ...]:
    """Whose diversity is shown: the humans, the competing baselines, the models."""
    return ("human", *competitor_names(), *MODEL_METHODS)

ORDER_SENTENCE = ("Each valid item of a seeded sample is scored twice: with its options as "
                  "given and in reverse order (so every option gets another letter); the "
                  "second prediction is mapped back to the original order. \"top option "
                  "unchanged\" is the share of items whose most likely option is the same "
                  "both times; 1-jsd between orders is 1 when the order does not matter.")
DIVERSITY_SENTENCE = ("Between-population 1-jsd: per question, the mean pairwise 1-jsd between "
                      "populations' distributions (higher = populations more alike). A model "
                      "whose value is above the humans' treats countries as more alike than "
                      "they are; an entropy above the humans' means flatter predictions.")


class Tab:
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
        head = "".join(f"<th>{esc(h)}</th>" for h in self.headers)
        body = []
        for row, kind in zip(self.rows, self.kinds):
            cells = "".join(f'<td class="num">{esc(c)}</td>' if n else f"<td>{esc(c)}</td>"
                            for c, n in zip(row, self.numeric))
            attr = f' class="{kind}"' if kind else ""
            body.append(f"<tr{attr}>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def esc(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
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


def model_name(run: RunResults) -> str:
    return run.model or "(model not recorded)"


def _join(names: Sequence[str]) -> str:
    """`a`, `b` and `c`."""
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


# --- tables --------------------------------------------------------------------------------

def scores(run: RunResults, metric: str = "1-jsd") -> dict[str, dict[str, float]]:
    """method -> split -> value."""
    out: dict[str, dict[str, float]] = {}
    for row in run.results:
        value = row.metrics.get(metric)
        if value is not None:
            out.setdefault(row.method, {})[row.split] = float(value)
    return out


def methods(run: RunResults) -> list[str]:
    """The methods of a run, in registry order."""
    return sorted({row.method for row in run.results}, key=method_sort_key)


def splits(run: RunResults) -> list[str]:
    """The splits of a run, in :data:`surveytune.data.splits.SPLIT_ORDER`."""
    return sorted({row.split for row in run.results}, key=split_sort_key)


def split_n(run: RunResults) -> dict[str, str]:
    """split -> item count as printed (a range when methods were scored on different counts)."""
    counts: dict[str, set[int]] = {}
    for row in run.results:
        counts.setdefault(row.split, set()).add(row.n)
    return {s: (str(min(c)) if len(c) == 1 else f"{min(c)}-{max(c)}") for s, c in counts.items()}


def row_kind(method: str) -> str:
    """A table row's CSS kind: "" for the models, "ref" for the baselines."""
    return "" if method in MODEL_METHODS else "ref"


def splits_table(run: RunResults, wording: Mapping[str, str] | None = None) -> Tab:
    """1-jsd of every method on every split, with n and what the split holds (in a study's
    own ``wording`` where it has one)."""
    names = methods(run)
    n = split_n(run)
    by_method = scores(run)
    tab = Tab(["split", "holds", "n", *names], [False, False, True] + [True] * len(names))
    for split in splits(run):
        tab.add([split, split_description(split, wording), n[split],
                 *[fmt(by_method[m].get(split)) for m in names]])
    return tab


def _competitors(run: RunResults) -> list[str]:
    """The competing baselines this run has rows for (e.g. no region-mean for subgroups)."""
    present = methods(run)
    return [name for name in competitor_names() if name in present]


def _test_splits(run: RunResults) -> list[str]:
    return [s for s in splits(run) if s.startswith("test")]


def metrics_average_table(run: RunResults) -> tuple[Tab, list[str]]:
    """Every metric, item-weighted over the test splits all the shown methods (the
    competitors and the models) were scored on."""
    shown = [m for m in (*competitor_names(), *MODEL_METHODS) if m in methods(run)]
    by_method: dict[str, dict[str, Any]] = {}
    for row in run.results:
        by_method.setdefault(row.method, {})[row.split] = row
    common = [s for s in _test_splits(run) if all(s in by_method.get(m, {}) for m in shown)]
    tab = Tab(["method", "n", *METRIC_NAMES], [False] + [True] * (1 + len(METRIC_NAMES)))
    for method in shown:
        rows = [by_method[method][s] for s in common]
        total = sum(r.n for r in rows)
        cells = []
        for metric in METRIC_NAMES:
            pairs = [(float(r.metrics[metric]), r.n) for r in rows
                     if r.metrics.get(metric) is not None]
            weight = sum(w for _, w in pairs)
            ok = pairs and len(pairs) == len(rows) and weight
            cells.append(fmt(sum(v * w for v, w in pairs) / weight) if ok else "")
        tab.add([method, total, *cells], row_kind(method))
    return tab, common


def diversity(run: RunResults) -> dict[str, dict[str, dict[str, float | None]]]:
    """split -> source (human / zero-shot / fine-tuned) -> {measure: value}."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in run.diversity:
        out.setdefault(row.split, {})[row.method] = {
            "between_population_1-jsd": row.between_population,
            "mean_normalised_entropy": row.mean_normalised_entropy}
    return out


def diversity_table(run: RunResults) -> Tab | None:
    data = diversity(run)
    if not data:
        return None
    sources = [s for s in diversity_sources() if any(s in v for v in data.values())]
    tab = Tab(["split", "source", "between-population 1-jsd", "gap to humans",
               "mean normalised entropy"], [False, False, True, True, True])
    for split in sorted(data, key=split_sort_key):
        row = data[split]
        human = row.get("human", {}).get("between_population_1-jsd")
        for source in sources:
            if source not in row:
                continue
            value = row[source].get("between_population_1-jsd")
            gap = (value - human) if source != "human" and None not in (value, human) else None
            tab.add([split, source, fmt(value), "" if gap is None else f"{gap:+.3f}",
                     fmt(row[source].get("mean_normalised_entropy"))],
                    "" if source == "human" else row_kind(source))
    return tab


def order_table(run: RunResults) -> Tab | None:
    """Option-order consistency of the models (the reversal probe)."""
    if not run.order_consistency:
        return None
    tab = Tab(["split", "method", "n", "top option unchanged", "1-jsd between orders"],
              [False, False, True, True, True])
    for row in run.order_consistency:
        tab.add([row.split, row.method, row.n, f"{row.top_option_agreement:.0%}",
                 fmt(row.similarity)], row_kind(row.method))
    return tab


def subsample_sentence(run: RunResults) -> str:
    count = run.eval_items_per_split
    fraction = run.question_fraction
    parts = []
    if fraction is not None:
        parts.append(f"This is a smaller study on a seeded {fraction:.0%} of the WVS questions "
                     "(the same questions in training and every test split; valid whole)")
    if count is not None:
        parts.append(f"scores are on a seeded subsample of {count} items per split")
    valid_items = run.budget.get("valid_items")
    if valid_items is not None and run.evaluated.get("valid_zh"):
        parts.append(f"valid is scored on a seeded sample of whole questions (at least "
                     f"{valid_items} items), valid_zh on the same items in Chinese")
    if not parts:
        return "Scores are on the full splits."
    sentence = "; ".join(parts)
    return (sentence[0].upper() + sentence[1:] + ", so the numbers are not comparable with the "
            "paper's at that precision.")


def budget_text(budget: dict[str, Any]) -> str:
    if not budget:
        return "(not recorded)"
    name = budget.get("name", "")
    if budget.get("description"):  # a study budget: its own words say what it ran
        return f"{name}: {budget['description']} (full configuration in results.json)"
    rest = ", ".join(f"{k}={v}" for k, v in budget.items() if k != "name")
    return f"{name} ({rest})" if rest else str(name)


def setup_text(run: RunResults) -> str:
    """The prompt style and the arithmetic of a run, as results.json records them."""
    parts = [f"prompt style {run.budget.get('prompt', 'paper')}"]
    training = run.precision.get("training") or {}
    if training:
        parts.append(f"training {training['used']} ({training['requested']}: "
                     f"{training['reason']})")
    scoring = run.precision.get("scoring") or {}
    if scoring.get("used"):
        parts.append(f"scoring {scoring['used']} on {scoring.get('device', '?')}")
    return "; ".join(parts)


VERDICT_WORDS = {"met": "above", "tied": "tied with", "missed": "below"}
"""How a comparison's verdict reads: the model is above a method only when the whole interval
of the difference is above 0."""


def interval_text(row: Mapping[str, Any]) -> str:
    """A comparison's difference and interval: "+0.012 [-0.004, +0.027]"."""
    return f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def findings(run: RunResults, metric: str = "1-jsd",
             wording: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per split: how fine-tuned compares with zero-shot and the competitors,
    each with the paired difference and its 95% interval over questions where results.json
    holds them (above, tied or below by that interval), else by the means alone.

    Written from the numbers (nothing is hard-coded), so a reader sees at once whether the
    run meets the paper's claims, e.g. on the unseen-country splits test_2 and test_5.
    """
    by_method = scores(run, metric)
    tuned = by_method.get(FINE_TUNED, {})
    lines = []
    for split in splits(run):
        if split not in tuned:
            continue
        groups: dict[str, list[str]] = {"above": [], "tied with": [], "below": []}
        for other in (ZERO_SHOT, *competitor_names()):
            if split not in by_method.get(other, {}):
                continue
            text = f"{other} {fmt(by_method[other][split])}"
            row = run.comparison(split, FINE_TUNED, other)
            if row is not None:
                groups[VERDICT_WORDS[row["verdict"]]].append(f"{text} ({interval_text(row)})")
            else:
                groups["above" if tuned[split] > by_method[other][split] else "below"].append(
                    text)
        verdict = [f"{word} " + ", ".join(names) for word, names in groups.items() if names]
        lines.append(f"{split} ({split_description(split, wording)}): fine-tuned "
                     f"{fmt(tuned[split])} " + "; ".join(verdict) + ".")
    return lines


def comparisons_table(run: RunResults) -> Tab | None:
    """Every model against every competitor baseline, split by split, with n."""
    if not run.comparisons:
        return None
    tab = Tab(["split", "n (questions)", "model", "vs", "difference [95% interval]",
               "model is"], [False, True, False, False, True, False])
    for row in run.comparisons:
        tab.add([row["split"], f"{row['n']} ({row['questions']})", row["method"],
                 row["versus"], interval_text(row), VERDICT_WORDS[row["verdict"]]],
                row_kind(row["method"]))
    return tab


KEPT_STEP_0 = ("The kept checkpoint is step 0: training never beat the base weights on "
               "validation, so \"fine-tuned\" here is the base model with the training's prior "
               "and calibration.")

COMPARISONS_SENTENCE = (
    "The model's 1-jsd minus the baseline's on the same items, with a 95% paired bootstrap "
    "interval that resamples whole questions (a question's populations are not independent; "
    "surveytune.methods.stats). The model is above a baseline only when the whole interval "
    "is above 0; tied when it contains 0.")


Section = tuple[str, list[tuple[str, Any]]]
SectionHook = Callable[[RunResults], list[Section]]


def no_sections(run: RunResults) -> list[Section]:  # noqa: ARG001
    """A study's hook that adds no section."""
    return []


def study_section(run: RunResults) -> list[Section]:
    """What a study without opening sections of its own says after the findings."""
    return [("The study", [("p", f"Study `{run.study}`: {run.note}"),
                           ("note", subsample_sentence(run))])]


@dataclass(frozen=True)
class StudySections:
    """What a study adds to the report, handed in by whoever builds it (the report knows no
    study): its words for its splits (see :func:`split_description`), the sections after the
    findings, the sections after the paired comparisons and the sections at the end."""

    split_wording: Mapping[str, str] = field(default_factory=dict)
    opening: SectionHook = study_section
    closing: SectionHook = no_sections
    after_comparisons: SectionHook = no_sections


def sections(run: RunResults, study: StudySections = StudySections()) -> list[Section]:
    """The tables and sentences both outputs share, in order: (heading, [(kind, content)])
    with kind "p", "note", "list", "legend", "skip" or "table"."""
    metrics_tab, common = metrics_average_table(run)
    test_text = ", ".join(common) if common else "none"
    found = findings(run, wording=study.split_wording)
    result: list[Section] = [
        ("Findings: fine-tuned vs zero-shot and the baselines (1-jsd)",
         ([("list", found)] + ([("note", KEPT_STEP_0)] if run.kept_step == 0 else []))
         if found else [("skip", "No fine-tuned results in this run.")]),
        *study.opening(run),
        ("1-jsd on every split", [
            ("p", f"Every model score beside the baselines {_join(_competitors(run))}. "
                  + " ".join(f"`{m}`: {method_description(m)}." for m in methods(run)
                             if method_description(m))),
            ("table", splits_table(run, study.split_wording)),
        ]),
        ("Paired differences with intervals", [
            ("p", COMPARISONS_SENTENCE), ("table", comparisons_table(run))]
         if run.comparisons else [("skip", "No paired intervals in results.json.")]),
        *study.after_comparisons(run),
        ("All metrics, averaged over the test splits", [
            ("p", f"Item-weighted means over the test splits every row was scored on "
                  f"({test_text})."),
            ("table", metrics_tab),
            ("legend", {m: METRIC_DESCRIPTIONS[m] for m in METRIC_NAMES}),
        ]),
    ]
    div = diversity_table(run)
    result.append(("Diversity: humans vs the model", [
        ("p", DIVERSITY_SENTENCE), ("table", div)] if div is not None else
        [("skip", "No diversity measures in results.json.")]))
    order = order_table(run)
    result.append(("Option order: does the answer follow the options or their letters?", [
        ("p", ORDER_SENTENCE), ("table", order)] if order is not None else
        [("skip", "No option-order probe in this run.")]))
    return result + study.closing(run)
