"""What results.md and report.html both say: the tables and sentences of a run's report.

Built from a run's :class:`~surveytune.data.records.RunResults` only; method and split names,
order and descriptions come from ``methods.baselines`` and ``data.splits``. :func:`sections`
lists them in order; ``report.build`` writes them as markdown, ``report.html`` as HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from surveytune.data.records import RunResults
from surveytune.data.splits import UNSEEN_SURVEY, split_description, split_sort_key
from surveytune.methods.baselines import (
    FINE_TUNED,
    MODEL_METHODS,
    ZERO_SHOT,
    competitor_names,
    method_description,
    method_sort_key,
)
from surveytune.methods.metrics import (
    METRIC_DESCRIPTIONS,
    METRIC_NAMES,
    SUBPOP_WD,
    SUBPOP_WD_DESCRIPTION,
)
from surveytune.report import paper as reported
from surveytune.report.goals import goal_lines


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


def _split_n(run: RunResults) -> dict[str, str]:
    """split -> item count as printed (a range when methods were scored on different counts)."""
    counts: dict[str, set[int]] = {}
    for row in run.results:
        counts.setdefault(row.split, set()).add(row.n)
    return {s: (str(min(c)) if len(c) == 1 else f"{min(c)}-{max(c)}") for s, c in counts.items()}


def _row_kind(method: str) -> str:
    return "" if method in MODEL_METHODS else "ref"


def table4(run: RunResults) -> Tab:
    """The paper's Table 4 layout: the paper's rows, then this run's rows for every method."""
    n = _split_n(run)
    headers = ["model", "method", "source"]
    headers += [f"{split} {paper}" + (f" (n={n[split]})" if split in n else "")
                for split, paper in reported.PAPER_TABLE4_COLUMNS]
    headers.append("avg")
    tab = Tab(headers, [False] * 3 + [True] * (len(reported.PAPER_TABLE4_COLUMNS) + 1))
    for row in reported.PAPER_TABLE4:
        tab.add([row["model"], row["method"], "paper, reported",
                 *[fmt(row["scores"].get(split)) for split, _ in reported.PAPER_TABLE4_COLUMNS],
                 fmt(row["avg"])], "paper")
    by_method = scores(run)
    for method in methods(run):
        values = [by_method[method].get(split) for split, _ in reported.PAPER_TABLE4_COLUMNS]
        present = [v for v in values if v is not None]
        avg = fmt(sum(present) / len(present)) if present else ""
        if present and len(present) < len(values):
            avg += f" ({len(present)} of {len(values)})"
        model = model_name(run) if method in MODEL_METHODS else "(baseline, no model)"
        tab.add([model, method, "this run", *[fmt(v) for v in values], avg], _row_kind(method))
    return tab


def splits_table(run: RunResults) -> Tab:
    """1-jsd of every method on every split, with n and what the split holds."""
    names = methods(run)
    n = _split_n(run)
    by_method = scores(run)
    tab = Tab(["split", "holds", "n", *names], [False, False, True] + [True] * len(names))
    for split in splits(run):
        tab.add([split, split_description(split, run.study), n[split],
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
        tab.add([method, total, *cells], _row_kind(method))
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
                    "" if source == "human" else _row_kind(source))
    return tab


def order_table(run: RunResults) -> Tab | None:
    """Option-order consistency of the models (the reversal probe)."""
    if not run.order_consistency:
        return None
    tab = Tab(["split", "method", "n", "top option unchanged", "1-jsd between orders"],
              [False, False, True, True, True])
    for row in run.order_consistency:
        tab.add([row.split, row.method, row.n, f"{row.top_option_agreement:.0%}",
                 fmt(row.similarity)], _row_kind(row.method))
    return tab


def pew_table(run: RunResults) -> Tab | None:
    """The unseen-survey split beside the paper's Table 6."""
    by_method = scores(run)
    if not any(UNSEEN_SURVEY in v for v in by_method.values()):
        return None
    n = _split_n(run).get(UNSEEN_SURVEY, "")
    tab = Tab(["method", f"paper, reported ({reported.PAPER_TABLE6_MODEL}, Table 6)",
               f"this run ({UNSEEN_SURVEY}, n={n})"], [False, True, True])
    for method in methods(run):
        if UNSEEN_SURVEY in by_method[method]:
            tab.add([method, fmt(reported.PAPER_TABLE6.get(method)),
                     fmt(by_method[method][UNSEEN_SURVEY])], _row_kind(method))
    return tab


SUBPOP_SENTENCE = (
    "SubPOP (Suh et al. 2025) reports a Wasserstein distance on OpinionQA (Pew ATP), not on "
    "the GSS: Mistral-7B fine-tuned .096, uniform .178, human bound .031 (METHOD.md §8). Ours "
    "is defined above on this run's GSS items; set it beside theirs for scale only (another "
    "survey, other subgroups and questions, a 135M model). Not read from SubPOP's code: our "
    "definition, per their description of an ordinal WD normalised to [0, 1].")


def subpop_wd_table(run: RunResults) -> Tab | None:
    """The SubPOP-comparable Wasserstein distance of every method on every split."""
    if not run.subpop_wd:
        return None
    by_split: dict[str, dict[str, dict[str, Any]]] = {}
    for row in run.subpop_wd:
        by_split.setdefault(row["split"], {})[row["method"]] = row
    names = sorted({row["method"] for row in run.subpop_wd}, key=method_sort_key)
    tab = Tab(["split", "ordinal items", *names], [False, True] + [True] * len(names))
    for split in sorted(by_split, key=split_sort_key):
        rows = by_split[split]
        n = {r.get("n_ordinal") for r in rows.values()}
        tab.add([split, "-".join(str(v) for v in sorted(n)),
                 *[fmt(rows.get(m, {}).get(SUBPOP_WD)) for m in names]])
    return tab


LANGUAGE_SENTENCE = (
    "The same valid items (country x question) scored with the paper's English prompt "
    "(`valid`, questions from the unified WVS file) and the paper's Chinese prompt "
    "(`valid_zh`, the paper's `sft_wvs_zh_valid.json`; its closing sentence is our "
    "translation). Fine-tuning saw English prompts only.")


def language_table(run: RunResults) -> Tab | None:
    """1-jsd of every method on valid (English) and valid_zh (Chinese), paired items."""
    by_method = scores(run)
    if not any("valid_zh" in v for v in by_method.values()):
        return None
    n = _split_n(run)
    tab = Tab(["method", f"valid, English (n={n.get('valid', '')})",
               f"valid_zh, Chinese (n={n.get('valid_zh', '')})", "Chinese - English"],
              [False, True, True, True])
    for method in methods(run):
        en, zh = by_method[method].get("valid"), by_method[method].get("valid_zh")
        if en is None and zh is None:
            continue
        gap = f"{zh - en:+.3f}" if en is not None and zh is not None else ""
        tab.add([method, fmt(en), fmt(zh), gap], _row_kind(method))
    return tab


def _top(values: Sequence[float]) -> str:
    return chr(ord("A") + max(range(len(values)), key=lambda i: values[i])) if values else ""


def language_items_table(run: RunResults) -> Tab | None:
    """A few items side by side: each model's English and Chinese 1-jsd and top option."""
    if not run.language_pairs:
        return None
    shown = [m for m in MODEL_METHODS if f"{m} en" in run.language_pairs[0]]
    headers = ["country", "question (English / Chinese)", "human top"]
    headers += [f"{m} {lang}" for m in shown for lang in ("en", "zh")]
    tab = Tab(headers, [False, False, False] + [True] * 2 * len(shown))
    for pair in run.language_pairs:
        question = f"{pair['question_id']}: {_short(pair.get('question_en', ''))} / " \
                   f"{_short(pair.get('question_zh', ''))}"
        cells = []
        for method in shown:
            for lang in ("en", "zh"):
                cells.append(f"{fmt(pair.get(f'{method} {lang} 1-jsd'))} "
                             f"({_top(pair.get(f'{method} {lang}', []))})")
        tab.add([pair["population"], question, _top(pair.get("human", [])), *cells])
    return tab


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


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


def findings(run: RunResults, metric: str = "1-jsd") -> list[str]:
    """One sentence per split: how fine-tuned compares with zero-shot and the competitors.

    Written from the numbers (nothing is hard-coded), so a reader sees at once whether the
    run meets the paper's claims, e.g. on the unseen-country splits test_2 and test_5.
    """
    by_method = scores(run, metric)
    tuned = by_method.get(FINE_TUNED, {})
    lines = []
    for split in splits(run):
        if split not in tuned:
            continue
        value = tuned[split]
        beats, below = [], []
        for other in (ZERO_SHOT, *competitor_names()):
            if split in by_method.get(other, {}):
                ref = by_method[other][split]
                (beats if value > ref else below).append(f"{other} {fmt(ref)}")
        verdict = []
        if beats:
            verdict.append("beats " + ", ".join(beats))
        if below:
            verdict.append("is not above " + ", ".join(below))
        lines.append(f"{split} ({split_description(split, run.study)}): fine-tuned {fmt(value)} "
                     + "; ".join(verdict) + ".")
    return lines


Section = tuple[str, list[tuple[str, Any]]]


def sections(run: RunResults) -> list[Section]:
    """The tables and sentences both outputs share, in order: (heading, [(kind, content)])
    with kind "p", "note", "list", "legend", "skip" or "table"."""
    metrics_tab, common = metrics_average_table(run)
    test_text = ", ".join(common) if common else "none"
    found = findings(run)
    result: list[Section] = [
        ("Findings: fine-tuned vs zero-shot and the baselines (1-jsd)",
         [("list", found)] if found else [("skip", "No fine-tuned results in this run.")]),
    ]
    goals = goal_lines(run) if run.study == "wvs" else []
    if goals:
        result.append(("Goals: met or missed", [
            ("p", "What a simulator of unseen populations has to do to be worth using "
                  "(surveytune.report.goals): beat the baselines built from the training data, "
                  "tell populations apart about as much as people differ, and answer by content, "
                  "not by option position."), ("list", goals)]))
    if run.study == "wvs":
        result.append(("Paper Table 4 layout: 1-jsd (higher is better)", [
            ("p", f"Metric `1-jsd`: {METRIC_DESCRIPTIONS['1-jsd']}. Rows marked "
                  "\"paper, reported\" are the paper's numbers; rows marked \"this run\" are "
                  f"ours (model: {model_name(run)}). avg is the unweighted mean of the five "
                  "columns, as in the paper."),
            ("table", table4(run)),
            ("note", f"Test rows: {run.note or '(not recorded)'}"),
            ("note", subsample_sentence(run)),
        ]))
    else:
        result.append(("The study", [("p", f"Study `{run.study}`: {run.note}"),
                                     ("note", subsample_sentence(run))]))
    result += [
        ("1-jsd on every split", [
            ("p", f"Every model score beside the baselines {_join(_competitors(run))}. "
                  + " ".join(f"`{m}`: {method_description(m)}." for m in methods(run)
                             if method_description(m))),
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
    result.append(("Diversity: humans vs the model", [
        ("p", DIVERSITY_SENTENCE), ("table", div)] if div is not None else
        [("skip", "No diversity measures in results.json.")]))
    order = order_table(run)
    result.append(("Option order: does the answer follow the options or their letters?", [
        ("p", ORDER_SENTENCE), ("table", order)] if order is not None else
        [("skip", "No option-order probe in this run.")]))
    wd = subpop_wd_table(run)
    if wd is not None:
        result.append(("SubPOP-comparable Wasserstein distance (lower is better)", [
            ("p", f"`{SUBPOP_WD}`: {SUBPOP_WD_DESCRIPTION}."), ("table", wd),
            ("note", SUBPOP_SENTENCE)]))
    lang = language_table(run)
    if lang is not None:
        items = language_items_table(run)
        blocks: list[tuple[str, Any]] = [("p", LANGUAGE_SENTENCE), ("table", lang)]
        if items is not None:
            blocks += [("p", "Some items: 1-jsd against the human distribution and the top "
                             "option (letter) of each prediction."), ("table", items)]
        result.append(("English vs Chinese prompts on valid (1-jsd)", blocks))
    if run.study != "wvs":
        return result
    pew = pew_table(run)
    result.append(("Unseen survey (Pew) vs the paper's Table 6", [
        ("table", pew), ("note", reported.PEW_CAVEAT)] if pew is not None else
        [("skip", "No goqa (unseen survey) results in this run.")]))
    return result
