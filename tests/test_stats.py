"""The paired bootstrap over questions: hand-checked values and its coverage."""

from __future__ import annotations

import numpy as np
import pytest

from surveytune.methods.stats import paired_bootstrap


def test_mean_is_the_item_mean_and_a_constant_difference_has_no_width():
    result = paired_bootstrap([0.9, 0.8, 0.7, 0.6], [0.8, 0.7, 0.6, 0.5], ["q1", "q1", "q2", "q2"])
    assert result.mean == pytest.approx(0.1)
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)
    assert result.verdict() == "above" and result.n_clusters == 2 and result.n_items == 4


def test_resampling_keeps_a_question_together():
    # q1 (3 items) +0.3 each, q2 (1 item) -0.1: every resample's mean is a mix of the two
    # questions' item sums, so it lies in [-0.1, 0.3], and the interval reaches both ends.
    result = paired_bootstrap([0.3] * 3 + [0.0], [0.0] * 3 + [0.1], ["q1"] * 3 + ["q2"],
                              n_resamples=4000)
    assert result.mean == pytest.approx(0.2)
    assert result.low == pytest.approx(-0.1) and result.high == pytest.approx(0.3)
    assert result.verdict() == "tied"


def test_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="one cluster per item"):
        paired_bootstrap([0.1, 0.2], [0.1], ["a", "b"])
    with pytest.raises(ValueError, match="at least one item"):
        paired_bootstrap([], [], [])


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Synthetic questions with a question effect shared by their items: the true mean
    difference is 0.02; the 95% interval should cover it in about 95 of 100 samples (an
    item bootstrap, ignoring the clusters, covers it far less often)."""
    rng = np.random.default_rng(7)
    covered = naive_covered = 0
    trials = 200
    for trial in range(trials):
        questions = 30
        effect = 0.02 + rng.normal(0, 0.05, questions)  # per-question true difference
        clusters = np.repeat(np.arange(questions), 20)
        diff = effect[clusters] + rng.normal(0, 0.02, len(clusters))
        base = rng.uniform(0.6, 0.9, len(clusters))
        result = paired_bootstrap(base + diff, base, clusters.tolist(), n_resamples=500,
                                  seed=trial)
        covered += result.low <= 0.02 <= result.high
        naive = paired_bootstrap(base + diff, base, list(range(len(clusters))),
                                 n_resamples=500, seed=trial)
        naive_covered += naive.low <= 0.02 <= naive.high
    assert 0.89 <= covered / trials <= 0.99
    assert naive_covered / trials < 0.8


def test_compare_to_pairs_each_other_method_with_the_items_questions():
    from surveytune.data.items import make_item
    from surveytune.methods.stats import GOAL_VERDICTS, compare_to

    items = [make_item(survey="s", question_id=q, question="Q?", options=["a", "b"],
                       distribution=[0.5, 0.5], population=p)
             for q in ("q1", "q2", "q3") for p in ("A", "B")]
    scores = {"model": [0.9, 0.8, 0.7, 0.9, 0.6, 0.8], "uniform": [0.5] * 6,
              "same": [0.9, 0.8, 0.7, 0.9, 0.6, 0.8]}
    found = compare_to(items, scores, "model", ["uniform", "same"])
    assert found["uniform"].mean == pytest.approx(np.mean(scores["model"]) - 0.5)
    assert found["uniform"].n_items == 6 and found["uniform"].n_clusters == 3
    assert GOAL_VERDICTS[found["uniform"].verdict()] == "met"
    assert GOAL_VERDICTS[found["same"].verdict()] == "tied" and found["same"].mean == 0


def test_a_difference_of_rounding_only_is_a_tie():
    scores = [0.7, 0.8, 0.9, 0.6]
    noisy = [s - 1e-13 for s in scores]  # the same prediction computed two ways
    interval = paired_bootstrap(scores, noisy, ["q1", "q1", "q2", "q2"])
    assert interval.low > 0 and interval.verdict() == "tied"
    assert paired_bootstrap([s + 0.01 for s in scores], scores,
                            ["q1", "q1", "q2", "q2"]).verdict() == "above"
