"""Report outputs (results.md, report.html) from a synthetic run folder; no model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from surveytune.data.items import DataError
from surveytune.data.records import PredictionRecord, RunResults, TrainingRecord, write_predictions
from surveytune.methods.metrics import item_metrics
from surveytune.report.build import (
    StudySections,
    build_report,
    findings,
    load_predictions,
    results_frame,
    sample_items,
    write_results_md,
)
from surveytune.studies.registry import get_study
from surveytune.studies.wvs_paper import PAPER_TABLE4

WVS = get_study("wvs").report()  # the WVS study's sections: goals, the paper's tables

MODEL = "synthetic/TinyModel-7"
SPLITS = ("valid", "test_1", "test_2", "test_4", "test_5", "test_7", "goqa")
METHODS = ("uniform", "country-mean", "country-mean-loo", "ceiling", "zero-shot", "fine-tuned")
COUNTRIES = ("Kenya", "Peru", "Greece", "Egypt")
MARKER = 0.8127  # fine-tuned on test_2, shown as 0.813


def _results(splits=SPLITS, methods=METHODS) -> dict:
    rows = []
    for s_index, split in enumerate(splits):
        for m_index, method in enumerate(methods):
            value = 0.6 + 0.04 * m_index + 0.005 * s_index
            if (method, split) == ("fine-tuned", "test_2"):
                value = MARKER
            rows.append({"method": method, "split": split, "n": 100 + s_index, "1-jsd": value,
                         "js_divergence": 0.1, "emd": 0.2, "emd_paper": 0.05, "tv": 0.3,
                         "acc": 0.4})
    diversity = [{"split": split, "method": source, "between_population_1-jsd": 0.7 + 0.05 * i,
                  "mean_normalised_entropy": 0.8 + 0.05 * i}
                 for split in ("valid", "test_2")
                 for i, source in enumerate(("human", "zero-shot", "fine-tuned"))]
    return {"results": rows, "diversity": diversity,
            "budget": {"name": "quick", "max_steps": 20}, "model": MODEL,
            "note": "test rows only for the WVS countries we have",
            "eval_items_per_split": 40}


def _write_predictions(run: Path, method: str, shift: float) -> None:
    rng = np.random.default_rng(0)
    for split in SPLITS:
        records = []
        for q in range(3):
            for country in COUNTRIES:
                human = rng.dirichlet(np.ones(4))
                predicted = (1 - shift) * np.full(4, 0.25) + shift * human
                records.append(PredictionRecord(
                    id=f"wvs7/Q{q + 1}/{country}", split=split, survey="wvs7",
                    population=country, question_id=f"Q{q + 1}",
                    question=f"How important is thing {q}?",
                    options=["Very important", "Rather important", "Not very important",
                             "Not at all important (a very long option label)"],
                    human=human.tolist(), predicted=predicted.tolist(), letter_mass=0.9,
                    score=item_metrics(human, predicted)["1-jsd"]))
        write_predictions(records, run / "predictions" / method / f"{split}.jsonl")


def make_run(root: Path, fine_tuned: bool = True, training: bool = True) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results()), encoding="utf-8")
    _write_predictions(run, "zero-shot", 0.2)
    if fine_tuned:
        _write_predictions(run, "fine-tuned", 0.8)
    if training:
        history = [{"step": s, "valid_loss": 0.3 - 0.01 * s, "valid_1-jsd": 0.7 + 0.005 * s}
                   for s in (0, 5, 10, 15)]
        TrainingRecord(config={}, fingerprint={}, steps_done=15, total_steps=15,
                       stopped_by="steps", best_step=10, best_valid_loss=0.2, elapsed_s=1.0,
                       history=history, train_loss=[[s, 0.4 - 0.01 * s] for s in range(16)]
                       ).write(run / "train")
    return run


def test_build_report_writes_both_files(tmp_path):
    run = make_run(tmp_path)
    md_path, html_path = build_report(run, WVS)
    assert md_path == run / "results.md" and md_path.is_file()
    assert html_path == run / "report.html" and html_path.is_file()

    md = md_path.read_text(encoding="utf-8")
    assert "test_1 C1-Q3" in md and "test_7 C3-Q3" in md and "1-jsd" in md
    assert md.count("paper, reported") >= len(PAPER_TABLE4)
    for row in PAPER_TABLE4:
        assert row["model"] in md
    assert "0.585" in md and "0.823" in md and "0.826" in md  # paper numbers
    assert "0.617" in md and "0.767" in md  # paper Table 6
    for method in METHODS:
        assert f"| {method} | this run |" in md
    assert f"{MARKER:.3f}" in md
    assert MODEL in md
    assert "seeded subsample of 40 items per split" in md
    assert "unseen survey: GlobalOpinionQA Pew rows" in md
    assert "C2×Q1 unseen countries" in md
    for metric in ("js_divergence", "emd_paper", "tv", "acc"):
        assert metric in md

    html = html_path.read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') >= 4
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html
    assert MODEL in html
    assert "Chart skipped" not in html


def test_missing_fine_tuned_predictions_still_builds(tmp_path):
    run = make_run(tmp_path, fine_tuned=False, training=False)
    _, html_path = build_report(run)
    html = html_path.read_text(encoding="utf-8")
    assert "Chart skipped: no fine-tuned predictions yet" in html
    assert "no train/training.json" in html
    assert html.count('<img src="data:image/png;base64,') >= 2


def test_partial_results_without_models(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = _results(splits=("valid", "test_1"), methods=("uniform", "country-mean"))
    data["eval_items_per_split"] = None
    del data["diversity"]
    (run / "results.json").write_text(json.dumps(data), encoding="utf-8")
    md_path, html_path = build_report(run, WVS)
    md = md_path.read_text(encoding="utf-8")
    assert "Scores are on the full splits." in md
    assert "(1 of 5)" in md  # our avg over the one Table-4 column present
    assert "No goqa" in md
    assert "Chart skipped" in html_path.read_text(encoding="utf-8")


def test_missing_results_json_raises(tmp_path):
    with pytest.raises(DataError, match="no results.json"):
        build_report(tmp_path)
    assert not (tmp_path / "results.md").exists()
    with pytest.raises(DataError, match="results.json"):
        write_results_md(tmp_path)


def test_sample_items_are_deterministic_and_spread(tmp_path):
    run = make_run(tmp_path, training=False)
    predictions = {m: load_predictions(run, m) for m in ("zero-shot", "fine-tuned")}
    first = sample_items(predictions)
    assert first == sample_items(predictions)
    assert len(first) == 6
    assert {split for split, _ in first[:4]} <= {"test_2", "test_5"}
    populations = [key.split("/")[-1] for _, key in first[:4]]
    assert len(set(populations)) == 4


def test_results_frame_unchanged():
    rows = _results(splits=("valid",), methods=("uniform", "zero-shot"))["results"]
    frame = results_frame(rows)
    assert list(frame.columns) == ["n", "uniform", "zero-shot"]


def test_uniform_reference_is_the_uniform_baseline():
    from surveytune.data.items import make_item
    from surveytune.methods.baselines import uniform
    from surveytune.report.build import uniform_score

    human = [0.5, 0.3, 0.2]
    item = make_item(survey="s", question_id="q", question="Q?", options=["a", "b", "c"],
                     distribution=human, population="P")
    assert uniform_score(human) == item_metrics(human, uniform([item])[0])["1-jsd"]


def test_bad_prediction_line_is_located(tmp_path):
    run = make_run(tmp_path, fine_tuned=False, training=False)
    path = run / "predictions" / "zero-shot" / "test_2.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test_2\.jsonl:13"):
        build_report(run)


def test_findings_compare_fine_tuned_with_zero_shot_and_baselines():
    run = _results()
    for row in run["results"]:  # fine-tuned on test_5 below zero-shot (0.78)
        if (row["method"], row["split"]) == ("fine-tuned", "test_5"):
            row["1-jsd"] = 0.7
    lines = {line.split(" ")[0]: line for line in findings(RunResults.from_dict(run))}
    assert set(lines) == set(SPLITS)
    assert lines["test_2"] == ("test_2 (C2×Q1 unseen countries): fine-tuned 0.813 above "
                               "zero-shot 0.770, uniform 0.610, country-mean 0.650.")
    assert lines["test_5"].endswith("above uniform 0.620, country-mean 0.660; "
                                    "below zero-shot 0.780.")  # means alone: no intervals
    no_model = {**run, "results": [r for r in run["results"] if r["method"] != "fine-tuned"]}
    assert findings(RunResults.from_dict(no_model)) == []


def test_a_registered_baseline_reaches_every_table(tmp_path, monkeypatch):
    """Adding a baseline is one registry entry: the report orders and describes it."""
    from surveytune.methods import baselines

    monkeypatch.setattr(baselines, "BASELINES", dict(baselines.BASELINES))
    baselines.register(baselines.Baseline(
        "toy-mean", "per question, the mean of the toy populations",
        "competitor", lambda train, options: baselines.uniform))
    run = make_run(tmp_path, training=False)
    data = json.loads((run / "results.json").read_text())
    data["results"] += [{**row, "method": "toy-mean", "1-jsd": 0.5}
                        for row in data["results"] if row["method"] == "uniform"]
    (run / "results.json").write_text(json.dumps(data))
    md = build_report(run, WVS)[0].read_text(encoding="utf-8")
    assert "`toy-mean`: per question, the mean of the toy populations" in md
    assert "| (baseline, no model) | toy-mean | this run |" in md
    # the competitors the run has rows for (this fixture has no region-mean/population-style)
    assert "beside the baselines `uniform`, `country-mean` and `toy-mean`" in md
    assert "country-mean 0.650, toy-mean 0.500." in md  # findings compare with it
    header = next(line for line in md.splitlines() if line.startswith("| split | holds"))
    assert header.endswith("| ceiling | toy-mean | zero-shot | fine-tuned |")


def test_records_round_trip_and_refuse_missing_fields(tmp_path):
    from surveytune.data.records import TrainingRecord, read_predictions

    raw = _results()
    assert RunResults.from_dict(raw).to_dict()["results"] == raw["results"]
    run = make_run(tmp_path)
    training = TrainingRecord.read(run / "train")
    assert training.finished and training.best_step == 10
    record = read_predictions(run / "predictions" / "zero-shot" / "test_2.jsonl")[0]
    assert PredictionRecord.from_dict(record.to_dict()) == record
    lines = (run / "predictions" / "zero-shot" / "test_2.jsonl").read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["human"]
    lines[1] = json.dumps(broken)
    (run / "predictions" / "zero-shot" / "test_2.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test_2\.jsonl:2: field 'human': missing"):
        build_report(run)


def test_goals_say_met_or_missed_with_the_numbers(tmp_path):
    from surveytune.studies.wvs_goals import goal_lines

    def row(method, split, value):
        return {"method": method, "split": split, "n": 10, "1-jsd": value}

    run = {"results": [row("fine-tuned", "test_2", 0.85), row("country-mean", "test_2", 0.84),
                       row("region-mean", "test_2", 0.86), row("fine-tuned", "goqa", 0.72),
                       row("uniform", "goqa", 0.71)],
           "diversity": [{"split": "test_2", "method": "human",
                          "between_population_1-jsd": 0.873, "mean_normalised_entropy": 0.8},
                         {"split": "test_2", "method": "fine-tuned",
                          "between_population_1-jsd": 0.91, "mean_normalised_entropy": 0.8}],
           "order_consistency": [{"split": "valid", "method": "fine-tuned", "n": 90,
                                  "top_option_agreement": 0.9, "1-jsd": 0.97}]}
    lines = goal_lines(RunResults.from_dict(run))
    assert lines == [
        "MISSED: test_2 (unseen countries) fine-tuned 0.850 vs country-mean 0.840, "
        "region-mean 0.860",
        "met: goqa (unseen survey) fine-tuned 0.720 vs uniform 0.710",
        "met: test_2 between-population 1-jsd of fine-tuned 0.910 within 0.05 of the humans' "
        "0.873 (gap +0.037)",
        "met: fine-tuned top option unchanged under option reversal on 90% of 90 valid items "
        "(goal: at least 80%)"]
    run["diversity"][1]["between_population_1-jsd"] = 0.93
    assert goal_lines(RunResults.from_dict(run))[2].startswith("MISSED: test_2 between")
    # results.md lists them under their own heading
    (tmp_path / "results.json").write_text(json.dumps(run))
    text = write_results_md(tmp_path, WVS).read_text()
    assert "## Goals: met or missed" in text and "MISSED: test_2 (unseen countries)" in text


def test_goals_met_by_the_prior_alone_say_so():
    from surveytune.studies.wvs_goals import goal_lines

    run = {"results": [{"method": "fine-tuned", "split": "test_1", "n": 5, "1-jsd": 0.74},
                       {"method": "uniform", "split": "test_1", "n": 5, "1-jsd": 0.73},
                       {"method": "fine-tuned", "split": "test_2", "n": 5, "1-jsd": 0.86},
                       {"method": "region-mean", "split": "test_2", "n": 5, "1-jsd": 0.85}],
           "calibration": {"scales": {"seen": 0.1, "unseen": 0.0},
                           "prior_weights": {"seen": 1.0, "unseen": 0.5},
                           "fitted_on": {"seen": 200, "unseen": 200}}}
    lines = goal_lines(RunResults.from_dict(run))
    assert lines[0] == ("met: test_2 (unseen countries) fine-tuned 0.860 vs region-mean "
                        "0.850")  # scale 0.1: the model still counts
    assert lines[1].endswith("uniform 0.730 (the prior alone: the calibration gave the model "
                             "weight 0 for unseen questions)")
    assert lines[2].startswith("calibration chosen on validation data: seen questions model "
                               "scale 0.1, prior weight 1; unseen questions model scale 0, "
                               "prior weight 0.5")


def test_findings_goals_and_the_report_use_the_paired_intervals(tmp_path):
    """A difference whose interval contains 0 is a tie, wherever it is reported."""
    from surveytune.studies.wvs_goals import goal_lines

    def row(method, value):
        return {"method": method, "split": "test_2", "n": 60, "1-jsd": value}

    def versus(baseline, difference, low, high, verdict):
        return {"split": "test_2", "method": "fine-tuned", "versus": baseline,
                "metric": "1-jsd", "n": 60, "questions": 6, "difference": difference,
                "low": low, "high": high, "level": 0.95, "verdict": verdict}

    run = {"results": [row("fine-tuned", 0.851), row("country-mean", 0.853),
                       row("region-mean", 0.84), row("uniform", 0.77)],
           "comparisons": [versus("uniform", 0.081, 0.05, 0.11, "met"),
                           versus("country-mean", -0.002, -0.010, 0.006, "tied"),
                           versus("region-mean", 0.011, 0.002, 0.02, "met")]}
    results = RunResults.from_dict(run)
    (line,) = findings(results)
    assert line == ("test_2 (C2×Q1 unseen countries): fine-tuned 0.851 above uniform 0.770 "
                    "(+0.081 [+0.050, +0.110]), region-mean 0.840 (+0.011 [+0.002, +0.020]); "
                    "tied with country-mean 0.853 (-0.002 [-0.010, +0.006]).")
    assert goal_lines(results)[0] == (
        "TIED: test_2 (unseen countries, n=60 items of 6 questions) fine-tuned 0.851 vs "
        "country-mean 0.853 (difference -0.002 [-0.010, +0.006]), region-mean 0.840 "
        "(difference +0.011 [+0.002, +0.020])")
    run["comparisons"][1].update(difference=-0.02, low=-0.03, high=-0.01, verdict="missed")
    assert goal_lines(RunResults.from_dict(run))[0].startswith("MISSED: test_2")
    (tmp_path / "results.json").write_text(json.dumps(run))
    text = write_results_md(tmp_path, WVS).read_text()
    assert "## Paired differences with intervals" in text
    assert ("| test_2 | 60 (6) | fine-tuned | country-mean | -0.020 [-0.030, -0.010] | below |"
            in text)
    assert RunResults.from_dict(RunResults.from_dict(run).to_dict()) == RunResults.from_dict(run)


def test_a_run_that_kept_step_0_says_so_beside_the_fine_tuned_rows(tmp_path):
    run = {"results": [{"method": "fine-tuned", "split": "test_2", "n": 5, "1-jsd": 0.8},
                       {"method": "uniform", "split": "test_2", "n": 5, "1-jsd": 0.7}],
           "kept_step": 0}
    (tmp_path / "results.json").write_text(json.dumps(run))
    assert "The kept checkpoint is step 0" in write_results_md(tmp_path, WVS).read_text()
    run["kept_step"] = 30
    (tmp_path / "results.json").write_text(json.dumps(run))
    assert "The kept checkpoint is step 0" not in write_results_md(tmp_path, WVS).read_text()


def test_the_observed_rows_make_goals_a_section_and_a_chart(tmp_path):
    from surveytune.report.charts import chart_observed_k
    from surveytune.studies.wvs_goals import observed_goal_lines

    def row(split, k, method, value, observe="populations"):
        return {"split": split, "observe": observe, "k": k, "method": method, "n": 50,
                "questions": 5, "observed_cells": 15, "1-jsd": value}

    def versus(split, k, method, other, low, high, verdict, observe="populations"):
        return {"split": split, "observe": observe, "k": k, "method": method, "versus": other,
                "metric": "1-jsd", "n": 50, "questions": 5, "difference": (low + high) / 2,
                "low": low, "high": high, "level": 0.95, "verdict": verdict}

    tuned = "fine-tuned, observed prior"
    run = {"results": [{"method": "fine-tuned", "split": "test_1", "n": 5, "1-jsd": 0.7},
                       {"method": "uniform", "split": "test_1", "n": 5, "1-jsd": 0.6}],
           "observed_rows": [row("test_1", 1, tuned, 0.78), row("test_1", 3, tuned, 0.79),
                             row("test_1", 3, "similar-populations", 0.79),
                             row("test_1", 3, "observed-mean", 0.75),
                             row("test_2", 3, tuned, 0.88, "questions")],
           "observed_comparisons": [
               versus("test_1", 3, tuned, "observed-mean", 0.02, 0.06, "met"),
               versus("test_1", 3, "similar-populations", "region-mean", 0.1, 0.2, "met"),
               versus("test_2", 3, tuned, "region-mean", -0.001, 0.003, "tied", "questions")]}
    results = RunResults.from_dict(run)
    assert observed_goal_lines(results) == [
        "MISSED: test_1 (unseen questions, 3 observed countries each, n=50 items of 5 "
        "questions) fine-tuned, observed prior 0.790, goal above 0.80; vs observed-mean "
        "+0.040 [+0.020, +0.060]",  # above observed-mean, but not above .80
        "TIED: test_2 (unseen countries, 3 observed questions each, n=50 items of 5 "
        "questions) fine-tuned, observed prior 0.880; vs region-mean +0.001 [-0.001, +0.003]"]
    (tmp_path / "results.json").write_text(json.dumps(run))
    text = write_results_md(tmp_path, WVS).read_text()
    assert "## What observations buy: k observed countries or questions" in text
    assert ("| test_1 | k=3 countries of each question | 50 (5) | 0.790 | 0.790 | 0.750 |"
            in text)
    assert ("- test_1: 3 observed countries buy +0.150 [+0.100, +0.200] 1-jsd over "
            "region-mean (above it; n=50 items of 5 questions)") in text
    assert chart_observed_k(results).startswith("data:image/png;base64,")
    assert chart_observed_k(RunResults.from_dict({"results": []})) is None
    assert "What observations buy" not in write_results_md(
        tmp_path, StudySections()).read_text()  # a study without the design: no section
