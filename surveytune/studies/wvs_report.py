"""The WVS study's own report sections: its goals, the paper's Table 4 and Table 6 beside this
run, and valid in English vs Chinese (handed to the report through the study's spec)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from surveytune.data.records import RunResults
from surveytune.data.splits import UNSEEN_SURVEY
from surveytune.methods.baselines import MODEL_METHODS
from surveytune.methods.metrics import METRIC_DESCRIPTIONS
from surveytune.report.sections import (
    Section,
    Tab,
    fmt,
    methods,
    model_name,
    row_kind,
    scores,
    split_n,
    subsample_sentence,
)
from surveytune.studies import wvs_paper as reported
from surveytune.studies.wvs_goals import goal_lines


def table4(run: RunResults) -> Tab:
    """The paper's Table 4 layout: the paper's rows, then this run's rows for every method."""
    n = split_n(run)
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
        tab.add([model, method, "this run", *[fmt(v) for v in values], avg], row_kind(method))
    return tab



def pew_table(run: RunResults) -> Tab | None:
    """The unseen-survey split beside the paper's Table 6."""
    by_method = scores(run)
    if not any(UNSEEN_SURVEY in v for v in by_method.values()):
        return None
    n = split_n(run).get(UNSEEN_SURVEY, "")
    tab = Tab(["method", f"paper, reported ({reported.PAPER_TABLE6_MODEL}, Table 6)",
               f"this run ({UNSEEN_SURVEY}, n={n})"], [False, True, True])
    for method in methods(run):
        if UNSEEN_SURVEY in by_method[method]:
            tab.add([method, fmt(reported.PAPER_TABLE6.get(method)),
                     fmt(by_method[method][UNSEEN_SURVEY])], row_kind(method))
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
    n = split_n(run)
    tab = Tab(["method", f"valid, English (n={n.get('valid', '')})",
               f"valid_zh, Chinese (n={n.get('valid_zh', '')})", "Chinese - English"],
              [False, True, True, True])
    for method in methods(run):
        en, zh = by_method[method].get("valid"), by_method[method].get("valid_zh")
        if en is None and zh is None:
            continue
        gap = f"{zh - en:+.3f}" if en is not None and zh is not None else ""
        tab.add([method, fmt(en), fmt(zh), gap], row_kind(method))
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




def opening_sections(run: RunResults) -> list[Section]:
    """After the findings: the goals met or missed, then the paper's Table 4 layout."""
    result: list[Section] = []
    goals = goal_lines(run)
    if goals:
        result.append(("Goals: met or missed", [
            ("p", "What a simulator of unseen populations has to do to be worth using "
                  "(surveytune.studies.wvs_goals): beat the baselines built from the training "
                  "data, tell populations apart about as much as people differ, and answer by "
                  "content, not by option position. Beating a baseline is met only when the "
                  "95% paired interval of the difference (resampling questions) lies above 0; "
                  "TIED when it contains 0."), ("list", goals)]))
    result.append(("Paper Table 4 layout: 1-jsd (higher is better)", [
        ("p", f"Metric `1-jsd`: {METRIC_DESCRIPTIONS['1-jsd']}. Rows marked "
              "\"paper, reported\" are the paper's numbers; rows marked \"this run\" are "
              f"ours (model: {model_name(run)}). avg is the unweighted mean of the five "
              "columns, as in the paper."),
        ("table", table4(run)),
        ("note", f"Test rows: {run.note or '(not recorded)'}"),
        ("note", subsample_sentence(run)),
    ]))
    return result


def closing_sections(run: RunResults) -> list[Section]:
    """At the end: English vs Chinese on valid (when valid_zh was scored), then the unseen
    survey beside the paper's Table 6."""
    result: list[Section] = []
    lang = language_table(run)
    if lang is not None:
        items = language_items_table(run)
        blocks: list[tuple[str, Any]] = [("p", LANGUAGE_SENTENCE), ("table", lang)]
        if items is not None:
            blocks += [("p", "Some items: 1-jsd against the human distribution and the top "
                             "option (letter) of each prediction."), ("table", items)]
        result.append(("English vs Chinese prompts on valid (1-jsd)", blocks))
    pew = pew_table(run)
    result.append(("Unseen survey (Pew) vs the paper's Table 6", [
        ("table", pew), ("note", reported.PEW_CAVEAT)] if pew is not None else
        [("skip", "No goqa (unseen survey) results in this run.")]))
    return result
