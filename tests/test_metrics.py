"""Metrics, aggregation and diversity on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surveytune.data.items import make_item
from surveytune.methods.metrics import (
    METRIC_DESCRIPTIONS,
    METRIC_NAMES,
    between_population_similarity,
    diversity_report,
    item_metrics,
    mean_entropy,
    metrics_table,
    result_rows,
    summarize,
)


def _item(qid: str, population: str, dist, split: str | None = "valid"):
    options = [f"opt{i}" for i in range(len(dist))]
    return make_item(survey="toy", question_id=qid, question=f"Question {qid}?",
                     options=options, distribution=list(dist), population=population,
                     split=split)


def test_names_and_descriptions():
    assert METRIC_NAMES == ("1-jsd", "js_divergence", "emd", "emd_paper", "tv", "acc")
    assert set(METRIC_DESCRIPTIONS) == set(METRIC_NAMES)
    assert "paper" in METRIC_DESCRIPTIONS["emd_paper"]


def test_identical_distributions():
    m = item_metrics([0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    assert m["1-jsd"] == pytest.approx(1.0)
    assert m["js_divergence"] == pytest.approx(0.0, abs=1e-12)
    assert m["emd"] == pytest.approx(0.0)
    assert m["emd_paper"] == pytest.approx(0.0)
    assert m["tv"] == pytest.approx(0.0)
    assert m["acc"] == 1.0


def test_disjoint_two_options():
    m = item_metrics([1.0, 0.0], [0.0, 1.0])
    assert m["js_divergence"] == pytest.approx(1.0)
    assert m["1-jsd"] == pytest.approx(1.0 - math.sqrt(math.log(2)))
    assert m["tv"] == pytest.approx(1.0)
    assert m["emd"] == pytest.approx(1.0)
    assert m["acc"] == 0.0


def test_nearly_identical_never_nan():
    # scipy's JS divergence rounds below 0 here and its sqrt would be NaN
    p = [0.002052815260594404, 0.9556562725888036, 0.042290912150602086]
    q = [0.0020528152605944097, 0.9556562725888036, 0.042290912150601996]
    m = item_metrics(p, q)
    assert m["1-jsd"] == pytest.approx(1.0)
    assert m["js_divergence"] == pytest.approx(0.0, abs=1e-12)
    items = [_item("q1", "A", p), _item("q1", "B", q)]
    assert between_population_similarity(items) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    dists = rng.dirichlet(np.ones(7), size=200)
    items = [_item(f"q{i}", "A", d) for i, d in enumerate(dists)]
    table = metrics_table(items, [d * (1 + 1e-15) for d in dists])
    assert not table[list(METRIC_NAMES)].isna().any().any()
    assert np.allclose(table["1-jsd"], 1.0)


def test_emd_ordinal_by_hand():
    # CDFs: p .5, 1, 1 ; q 0, .5, 1 -> |diffs| over first K-1 = .5 + .5 -> 1.0 / 2
    m = item_metrics([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    assert m["emd"] == pytest.approx(0.5)
    assert m["tv"] == pytest.approx(0.5)
    # moving all mass from the first to the last of 4 options is the maximum, 1
    assert item_metrics([1, 0, 0, 0], [0, 0, 0, 1])["emd"] == pytest.approx(1.0)
    # one step on a 5-point scale: 1/4
    assert item_metrics([1, 0, 0, 0, 0], [0, 1, 0, 0, 0])["emd"] == pytest.approx(0.25)


def test_emd_paper_is_order_blind():
    m = item_metrics([0.7, 0.2, 0.1], [0.1, 0.2, 0.7])
    assert m["emd_paper"] == pytest.approx(0.0)
    # CDF diffs .6, .6 -> 1.2 / 2
    assert m["emd"] == pytest.approx(0.6)
    assert m["acc"] == 0.0


def test_acc_mode():
    assert item_metrics([0.1, 0.6, 0.3], [0.2, 0.5, 0.3])["acc"] == 1.0
    assert item_metrics([0.1, 0.6, 0.3], [0.2, 0.3, 0.5])["acc"] == 0.0


def test_item_metrics_shape_mismatch():
    with pytest.raises(ValueError):
        item_metrics([0.5, 0.5], [0.2, 0.3, 0.5])


def test_metrics_table_matches_item_metrics_and_mixed_k():
    items = [_item("q1", "A", [0.5, 0.5, 0.0]), _item("q2", "A", [0.25, 0.75]),
             _item("q1", "B", [0.2, 0.3, 0.5], split="test")]
    preds = [[0.0, 0.5, 0.5], [0.5, 0.5], np.array([0.2, 0.3, 0.5])]
    table = metrics_table(items, preds)
    assert list(table.columns[:6]) == ["id", "split", "survey", "question_id", "population",
                                       "n_options"]
    assert list(table["n_options"]) == [3, 2, 3]
    for row, item, pred in zip(table.to_dict("records"), items, preds):
        expected = item_metrics(item.distribution, pred)
        for name in METRIC_NAMES:
            assert row[name] == pytest.approx(expected[name]), name
    assert table.loc[2, "1-jsd"] == pytest.approx(1.0)


def test_metrics_table_refuses_bad_predictions():
    items = [_item("q1", "A", [0.5, 0.5]), _item("q2", "A", [0.5, 0.5])]
    with pytest.raises(ValueError, match="toy:q2:A"):
        metrics_table(items, [[0.5, 0.5], [0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="toy:q2:A"):
        metrics_table(items, [[0.5, 0.5], [0.7, 0.7]])
    with pytest.raises(ValueError, match="toy:q1:A"):
        metrics_table(items, [[1.5, -0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        metrics_table(items, [[0.5, 0.5]])


def test_summarize_by_split():
    items = [_item("q1", "A", [1.0, 0.0], split="train"),
             _item("q1", "B", [1.0, 0.0], split="valid"),
             _item("q2", "B", [0.5, 0.5], split="valid")]
    preds = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    table = metrics_table(items, preds)
    by_split = summarize(table, by="split").set_index("split")
    assert by_split.loc["train", "n"] == 1
    assert by_split.loc["valid", "n"] == 2
    assert by_split.loc["train", "tv"] == pytest.approx(0.0)
    assert by_split.loc["valid", "tv"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert by_split.loc["valid", "js_divergence"] == pytest.approx(0.5)
    overall = summarize(table)
    assert overall.loc[0, "n"] == 3
    assert overall.loc[0, "tv"] == pytest.approx(1 / 3)
    by_pop = summarize(table, by="population").set_index("population")
    assert by_pop.loc["B", "n"] == 2


def test_summarize_refuses_nan():
    table = metrics_table([_item("q1", "A", [0.5, 0.5])], [[0.5, 0.5]])
    table.loc[0, "emd"] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        summarize(table)


def test_result_rows_shape():
    items = [_item("q1", "A", [0.5, 0.5]), _item("q2", "A", [1.0, 0.0])]
    row = result_rows("m", "valid", items, [[0.5, 0.5], [0.0, 1.0]])
    assert list(row) == ["method", "split", "n", *METRIC_NAMES]
    assert row["n"] == 2 and row["method"] == "m" and row["split"] == "valid"
    assert row["tv"] == pytest.approx(0.5)
    assert row["acc"] == pytest.approx(0.5)
    assert all(isinstance(row[m], float) for m in METRIC_NAMES)
    with pytest.raises(ValueError):
        result_rows("m", "valid", [], [])


def test_between_population_similarity_toy():
    items = [_item("q1", "A", [1.0, 0.0]), _item("q1", "B", [0.0, 1.0]),
             _item("q2", "A", [0.3, 0.7]), _item("q2", "B", [0.3, 0.7]),
             _item("q3", "A", [0.5, 0.5])]  # single population: skipped
    expected = ((1 - math.sqrt(math.log(2))) + 1.0) / 2
    assert between_population_similarity(items) == pytest.approx(expected)
    preds = [[0.5, 0.5]] * 5
    assert between_population_similarity(items, preds) == pytest.approx(1.0)
    # three populations: mean of the three pairs
    three = [_item("q", "A", [1.0, 0.0]), _item("q", "B", [1.0, 0.0]),
             _item("q", "C", [0.0, 1.0])]
    d = 1 - math.sqrt(math.log(2))
    assert between_population_similarity(three) == pytest.approx((1 + d + d) / 3)
    with pytest.raises(ValueError):
        between_population_similarity([items[4]])


def test_entropy_and_report():
    assert mean_entropy([[0.5, 0.5], [0.25] * 4]) == pytest.approx(1.0)
    assert mean_entropy([[1.0, 0.0]]) == pytest.approx(0.0)
    assert mean_entropy([[0.5, 0.5]], normalised=False) == pytest.approx(math.log(2))
    items = [_item("q1", "A", [1.0, 0.0]), _item("q1", "B", [0.0, 1.0])]
    report = diversity_report(items, [[0.5, 0.5], [0.5, 0.5]])
    assert report["human_between_population_1-jsd"] == pytest.approx(1 - math.sqrt(math.log(2)))
    assert report["model_between_population_1-jsd"] == pytest.approx(1.0)
    assert report["human_mean_normalised_entropy"] == pytest.approx(0.0)
    assert report["model_mean_normalised_entropy"] == pytest.approx(1.0)
