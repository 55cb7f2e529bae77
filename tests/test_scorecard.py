"""The scorecard of a model on any file: baselines, paired intervals over questions, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from surveytune.data.items import make_item
from surveytune.methods.scorecard import scorecard

HUMANS = {("q1", "Kenya"): [0.8, 0.2], ("q1", "Chad"): [0.6, 0.4],
          ("q2", "Kenya"): [0.3, 0.7], ("q2", "Chad"): [0.1, 0.9],
          ("q3", "Kenya"): [0.5, 0.5], ("q3", "Chad"): [0.7, 0.3]}


def _items(humans=HUMANS):
    return [make_item(survey="s", question_id=q, question=f"{q}?", options=["a", "b"],
                      distribution=d, population=p) for (q, p), d in humans.items()]


def test_a_perfect_model_beats_uniform_and_the_rows_state_their_n():
    items = _items()
    rows = {r["method"]: r for r in scorecard(items, {"zero-shot": [i.distribution
                                                                    for i in items]})}
    assert list(rows) == ["zero-shot", "uniform", "country-mean-loo"]
    assert rows["zero-shot"]["1-jsd"] == pytest.approx(1.0)
    expected_uniform = np.mean([1 - jensenshannon(d, [0.5, 0.5]) for d in HUMANS.values()])
    assert rows["uniform"]["1-jsd"] == pytest.approx(expected_uniform)
    assert rows["uniform"]["difference"] == pytest.approx(1 - expected_uniform)
    assert rows["uniform"]["verdict"] == "met" and rows["uniform"]["low"] > 0
    assert all(r["n"] == 6 and r["questions"] == 3 for r in rows.values())
    assert rows["country-mean-loo"]["kind"] == "reference"


def test_a_model_that_is_uniform_ties_with_uniform():
    items = _items()
    rows = {r["method"]: r for r in scorecard(items, {"m": [[0.5, 0.5]] * 6})}
    assert rows["uniform"]["difference"] == 0 and rows["uniform"]["verdict"] == "tied"


def test_a_reference_file_adds_the_population_mean_baselines():
    items = _items()
    reference = [make_item(survey="s", question_id=q, question=f"{q}?", options=["a", "b"],
                           distribution=[0.9, 0.1], population=p)
                 for q in ("q1", "q2", "q3") for p in ("Egypt", "Peru")]
    rows = {r["method"]: r for r in scorecard(items, {"m": [[0.5, 0.5]] * 6},
                                              reference=reference)}
    assert {"country-mean", "region-mean", "population-style"} <= set(rows)
    assert rows["country-mean"]["1-jsd"] == pytest.approx(
        np.mean([1 - jensenshannon(d, [0.9, 0.1]) for d in HUMANS.values()]))
    assert rows["country-mean"]["verdict"] == "met"  # uniform is closer to these humans
