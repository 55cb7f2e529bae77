"""Baselines on tiny synthetic items, and the published valid-split numbers on real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from surveytune.data.items import make_item
from surveytune.methods.baselines import (
    BASELINES,
    MODEL_METHODS,
    Baseline,
    baseline_predictors,
    ceiling,
    country_mean,
    country_mean_loo,
    evaluate_baselines,
    method_names,
    register,
    uniform,
)
from surveytune.methods.metrics import METRIC_NAMES, between_population_similarity, result_rows


def _item(qid: str, population: str, dist, split: str | None = None, survey: str = "toy"):
    options = [f"opt{i}" for i in range(len(dist))]
    return make_item(survey=survey, question_id=qid, question=f"Question {qid}?",
                     options=options, distribution=list(dist), population=population,
                     split=split)


TRAIN = [
    _item("q1", "A", [0.6, 0.4], "train"),
    _item("q1", "B", [0.2, 0.8], "train"),
    _item("q2", "A", [0.9, 0.1], "train"),
    _item("q3", "A", [0.3, 0.3, 0.4], "train"),
]


def test_uniform():
    preds = uniform([_item("q1", "X", [1, 0]), _item("q3", "X", [0.2, 0.3, 0.5])])
    np.testing.assert_allclose(preds[0], [0.5, 0.5])
    np.testing.assert_allclose(preds[1], [1 / 3] * 3)


def test_country_mean_seen_question():
    preds = country_mean(TRAIN, [_item("q1", "C", [0.5, 0.5]), _item("q3", "C", [1, 0, 0])])
    np.testing.assert_allclose(preds[0], [0.4, 0.6])
    np.testing.assert_allclose(preds[1], [0.3, 0.3, 0.4])


def test_country_mean_fallback_for_unseen_question():
    unseen_two = _item("q9", "C", [0.5, 0.5])
    unseen_four = _item("q8", "C", [0.1, 0.2, 0.3, 0.4])
    other_survey = _item("q1", "C", [0.5, 0.5], survey="other")  # same qid, other survey
    preds = country_mean(TRAIN, [unseen_two, unseen_four, other_survey])
    # mean of all 2-option training items: (.6+.2+.9)/3, (.4+.8+.1)/3
    np.testing.assert_allclose(preds[0], [1.7 / 3, 1.3 / 3])
    np.testing.assert_allclose(preds[1], [0.25] * 4)  # no 4-option training item: uniform
    np.testing.assert_allclose(preds[2], [1.7 / 3, 1.3 / 3])


def test_country_mean_refuses_option_count_mismatch():
    with pytest.raises(ValueError, match="options"):
        country_mean(TRAIN, [_item("q1", "C", [0.2, 0.3, 0.5])])


def test_country_mean_loo():
    items = [_item("q1", "A", [1.0, 0.0]), _item("q1", "B", [0.0, 1.0]),
             _item("q1", "C", [0.5, 0.5]), _item("q2", "A", [0.9, 0.1])]
    preds = country_mean_loo(items)
    np.testing.assert_allclose(preds[0], [0.25, 0.75])
    np.testing.assert_allclose(preds[1], [0.75, 0.25])
    np.testing.assert_allclose(preds[2], [0.5, 0.5])
    np.testing.assert_allclose(preds[3], [0.5, 0.5])  # only population: uniform


def test_ceiling_seeded_and_close():
    items = [_item("q1", "A", [0.6, 0.3, 0.1]), _item("q2", "A", [0.5, 0.5])]
    first = ceiling(items, n=1200, seed=3)
    again = ceiling(items, n=1200, seed=3)
    other = ceiling(items, n=1200, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))
    for pred, item in zip(first, items):
        assert pred.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(pred * 1200, np.round(pred * 1200))  # counts out of 1200
        np.testing.assert_allclose(pred, item.distribution, atol=0.08)
    np.testing.assert_allclose(ceiling(items, n=10**7)[0], items[0].distribution, atol=1e-3)


def test_evaluate_baselines_rows():
    splits = {"train": TRAIN,
              "valid": [_item("q1", "C", [0.4, 0.6], "valid"),
                        _item("q1", "D", [0.5, 0.5], "valid"),
                        _item("q7", "C", [0.2, 0.8], "valid")]}
    rows = evaluate_baselines(splits, ceiling_n=500, seed=1)
    assert [(r["method"], r["split"]) for r in rows] == [
        (m, s) for m in BASELINES if m != "group-mean" for s in ("train", "valid")]
    for row in rows:
        assert list(row) == ["method", "split", "n", *METRIC_NAMES]
        assert row["n"] == len(splits[row["split"]])
    cm_valid = next(r for r in rows if r["method"] == "country-mean" and r["split"] == "valid")
    expected = result_rows("country-mean", "valid", splits["valid"],
                           country_mean(TRAIN, splits["valid"]))
    assert cm_valid == expected
    # modes: C [.4,.6] vs train mean [.4,.6] hit; D [.5,.5] (mode A) and q7 fallback miss
    assert cm_valid["acc"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="train"):
        evaluate_baselines({"valid": splits["valid"]})


def test_baseline_options_are_checked_by_their_table():
    from surveytune.methods.baselines import BaselineOptions

    with pytest.raises(ValueError, match=r"^BaselineOptions.ceiling_n: must be at least 1, got 0$"):
        evaluate_baselines({"train": TRAIN}, ceiling_n=0)
    with pytest.raises(ValueError, match=r"^BaselineOptions.seed: must be a whole number"):
        BaselineOptions(seed=0.5)


def test_registry_names_order_and_kinds():
    assert tuple(BASELINES) == ("uniform", "country-mean", "group-mean", "region-mean",
                                "population-style", "country-mean-loo", "ceiling")
    assert method_names() == (*BASELINES, *MODEL_METHODS)
    kinds = {name: b.kind for name, b in BASELINES.items()}
    assert kinds == {"uniform": "competitor", "country-mean": "competitor",
                     "group-mean": "competitor",
                     "region-mean": "competitor", "population-style": "competitor",
                     "country-mean-loo": "reference", "ceiling": "reference"}
    assert all(b.description for b in BASELINES.values())
    with pytest.raises(ValueError, match="already registered"):
        register(Baseline("uniform", "again", "competitor", lambda train, options: uniform))
    with pytest.raises(ValueError, match="kind"):
        register(Baseline("other", "x", "rival", lambda train, options: uniform))


def test_a_new_baseline_is_one_registry_entry(monkeypatch):
    """A registered baseline is scored by evaluate_baselines, after the others, in order."""
    monkeypatch.setattr("surveytune.methods.baselines.BASELINES", dict(BASELINES))
    from surveytune.methods import baselines

    baselines.register(Baseline("first-option", "all mass on option A", "competitor",
                                lambda train, options: lambda items: [
                                    np.eye(i.n_options)[0] for i in items]))
    splits = {"train": TRAIN, "valid": [_item("q1", "C", [0.4, 0.6], "valid")]}
    rows = baselines.evaluate_baselines(splits)
    assert [r["method"] for r in rows][-2:] == ["first-option", "first-option"]
    assert rows[-1]["acc"] == 0.0
    assert baselines.method_names()[-3:] == ("first-option", "zero-shot", "fine-tuned")


def test_a_new_baseline_reaches_the_command_and_the_report(monkeypatch, capsys, tmp_path):
    """One registry entry and nothing else: ``surveytune baselines`` scores and prints it,
    and the report built from its rows describes it."""
    import sys

    from surveytune.cli.main import main
    from surveytune.data.records import RunResults
    from surveytune.methods import baselines
    from surveytune.report.build import render_markdown
    from surveytune.studies import wvs
    from surveytune.studies.registry import get_study

    monkeypatch.setattr(baselines, "BASELINES", dict(BASELINES))
    baselines.register(Baseline("first-option", "all mass on option A", "competitor",
                                lambda train, options: lambda items: [
                                    np.eye(i.n_options)[0] for i in items]))
    splits = {"train": TRAIN, "valid": [_item("q1", "C", [0.4, 0.6], "valid")]}
    monkeypatch.setattr(wvs, "study_splits", lambda data_dir: splits)  # no data files
    for args in (["--json"], []):
        monkeypatch.setattr(sys, "argv", ["surveytune", "baselines", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert not exit_info.value.code
        out = capsys.readouterr().out
        if args:
            payload = json.loads(out)
    rows = {(r["method"], r["split"]): r for r in payload["results"]}
    assert rows[("first-option", "valid")]["acc"] == 0.0 and ("first-option", "train") in rows
    assert "first-option" in out  # the printed table
    markdown = render_markdown(RunResults.from_dict(payload), tmp_path,
                               get_study("wvs").report())  # its Table 4 layout has the rows
    assert "`first-option`: all mass on option A." in markdown
    assert "| (baseline, no model) | first-option | this run |" in markdown


def _data_file() -> Path:
    root = Path(os.environ.get("SURVEYTUNE_DATA_DIR", "/work/shared/data"))
    return root / "wvs7_unified" / "wvs7_country_distributions.jsonl"


def _wvs_valid_items():
    items = []
    with _data_file().open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if "valid" not in row["paper_splits"]:
                continue
            letters = [o["letter"] for o in row["options"]]
            items.append(make_item(
                survey="wvs7", question_id=str(row["qid"]),
                question=row.get("question_text") or row["codebook_label"],
                options=[o["label"] for o in row["options"]],
                distribution=[row["dist"].get(letter, 0.0) for letter in letters],
                population=row["country"], split="valid"))
    return items


@pytest.mark.skipif(not _data_file().exists(), reason="real WVS data not available")
@pytest.mark.filterwarnings("ignore::surveytune.data.items.DataWarning")
def test_real_valid_split_numbers():
    items = _wvs_valid_items()
    assert len(items) == 1586
    uni = result_rows("uniform", "valid", items, uniform(items))
    loo = result_rows("country-mean-loo", "valid", items, country_mean_loo(items))
    assert uni["1-jsd"] == pytest.approx(0.664, abs=0.002)
    assert loo["1-jsd"] == pytest.approx(0.812, abs=0.002)
    assert between_population_similarity(items) == pytest.approx(0.748, abs=0.002)


def test_baselines_follow_the_population_kind():
    """Countries get country-mean and region-mean, subgroups group-mean (same numbers)."""
    countries = baseline_predictors(TRAIN)
    assert "country-mean" in countries and "region-mean" in countries
    assert "group-mean" not in countries
    groups = [i.replace(population_kind="subgroup") for i in TRAIN]
    subgroup = baseline_predictors(groups)
    assert set(subgroup) == {"uniform", "group-mean", "population-style", "country-mean-loo",
                             "ceiling"}
    for a, b in zip(subgroup["group-mean"](groups), country_mean(groups, groups)):
        assert np.allclose(a, b)
    assert set(baseline_predictors(TRAIN, names=["uniform"])) == {"uniform"}
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_predictors(TRAIN, names=["no-such"])
