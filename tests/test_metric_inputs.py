"""Public metric functions refuse what they cannot score (issue 10.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surveytune.data.items import SurveyItem
from surveytune.methods.metrics import (
    PREDICTION_TOLERANCE,
    between_population_similarity,
    check_distribution,
    item_metrics,
    mean_entropy,
    metrics_table,
)

GOOD = [0.2, 0.3, 0.5]


@pytest.mark.parametrize(("human", "predicted", "message"), [
    ([0, 0, 0], GOOD, "human distribution sums to 0"),
    (GOOD, [0, 0, 0], "predicted distribution sums to 0"),
    ([math.nan, 0.5, 0.5], GOOD, "NaN or infinite"),
    (GOOD, [0.2, math.nan, 0.8], "NaN or infinite"),
    (GOOD, [math.inf, 0.0, 0.0], "NaN or infinite"),
    ([-0.1, 0.6, 0.5], GOOD, "negative"),
    (GOOD, [0.2, 0.3, 0.6], "sums to 1.1"),
    ([0.5, 0.5], GOOD, "3 probabilities for 2 options"),
    ([[0.5, 0.5]], [[0.5, 0.5]], "vector of at least 2"),
    ([1.0], [1.0], "vector of at least 2"),
    (GOOD, "abc", "not a vector of numbers"),
])
def test_item_metrics_refuses_what_it_cannot_score(human, predicted, message):
    with pytest.raises(ValueError, match=message):
        item_metrics(human, predicted)


def test_the_old_perfect_scores_of_invalid_input_are_gone():
    # Before: [0, 0, 0] or a NaN against [.2, .3, .5] gave 1-jsd 1.0.
    for bad in ([0, 0, 0], [math.nan, 0.5, 0.5]):
        with pytest.raises(ValueError):
            item_metrics(bad, GOOD)


def test_sums_within_the_stated_tolerance_are_scored_unchanged():
    assert PREDICTION_TOLERANCE == 1e-4
    off = [0.2, 0.3, 0.5 + 0.5 * PREDICTION_TOLERANCE]
    m = item_metrics([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    assert m["emd"] == 0.5 and m["tv"] == 0.5  # hand-computed, exactly as before
    np.testing.assert_allclose(check_distribution(off), off)  # checked, not renormalised
    assert item_metrics(off, off)["tv"] == 0.0
    with pytest.raises(ValueError, match="sums to"):
        item_metrics([0.2, 0.3, 0.5 + 2 * PREDICTION_TOLERANCE], GOOD)


def test_tables_refuse_a_human_distribution_that_is_not_one():
    # Items built without make_item (e.g. from a predictions file) are checked too.
    bad = SurveyItem(id="toy:q:A", survey="toy", question_id="q", question="Q?",
                     options=("a", "b"), distribution=(0.0, 0.0), population="A")
    with pytest.raises(ValueError, match="toy:q:A.*human distribution sums to 0"):
        metrics_table([bad], [[0.5, 0.5]])


def test_entropy_and_similarity_refuse_non_distributions():
    with pytest.raises(ValueError, match="sums to 0"):
        mean_entropy([[0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        mean_entropy([[math.nan, 1.0]])
    items = [SurveyItem(id=f"toy:q:{p}", survey="toy", question_id="q", question="Q?",
                        options=("a", "b"), distribution=(0.5, 0.5), population=p)
             for p in "AB"]
    with pytest.raises(ValueError, match="toy:q:B"):
        between_population_similarity(items, [[0.5, 0.5], [0.9, 0.9]])
