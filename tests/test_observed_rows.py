"""The study's rows for k observed cells: draws, no leaks, training rows only."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_items

from surveytune.data.records import PredictionRecord
from surveytune.methods.baselines import baseline_predictors
from surveytune.methods.calibration import Calibration
from surveytune.studies.observed_rows import (
    MODEL_OBSERVED,
    OBSERVED_MEAN,
    SIMILAR,
    ObservedDesign,
    draw_observed,
    observed_predictions,
    observed_rows,
)

COUNTRIES = ("France", "Spain", "Italy", "Japan", "Korea", "Peru", "Chile", "Kenya")


def _world():
    items = synthetic_items(n_questions=12, populations=COUNTRIES, seed=3)
    train = [i.replace(split="train") for i in items if int(i.question_id[1:]) < 8]
    test = [i.replace(split="test_1") for i in items if int(i.question_id[1:]) >= 8]
    return train, test


def _records(items, rng):
    """Fine-tuned records of ``items`` holding a model distribution of their own."""
    out = []
    for item in items:
        own = rng.dirichlet(np.ones(item.n_options))
        out.append(PredictionRecord(
            id=item.id, split=item.split, survey=item.survey, population=item.population,
            question_id=item.question_id, question=item.question, options=list(item.options),
            human=list(item.distribution), predicted=list(own), letter_mass=1.0, score=0.0,
            model=list(own)))
    return out


def _baselines(train, items):
    return {name: predict(items) for name, predict in baseline_predictors(train).items()}


def test_draws_are_seeded_nested_and_leave_small_units_out():
    _, test = _world()
    one, rest_one = draw_observed(test, "populations", 1, seed="test_1")
    three, rest_three = draw_observed(test, "populations", 3, seed="test_1")
    assert {i.id for i in one} <= {i.id for i in three}  # nested
    assert len(three) == 4 * 3 and len(rest_three) == 4 * (len(COUNTRIES) - 3)
    assert not {i.id for i in three} & rest_three
    again, _ = draw_observed(list(reversed(test)), "populations", 3, seed="test_1")
    assert [i.id for i in again] == [i.id for i in three]  # order of the input: no matter
    assert draw_observed(test, "populations", 8, seed="test_1") == ([], set())
    by_country, _ = draw_observed(test, "questions", 3, seed="test_2")
    assert {c: sum(i.population == c for i in by_country) for c in COUNTRIES} == dict.fromkeys(
        COUNTRIES, 3)


def test_a_predicted_cell_never_reads_its_own_answer():
    train, test = _world()
    rng = np.random.default_rng(0)
    design = ObservedDesign("populations", (3,))
    records = _records(test, rng)
    model = (records, Calibration({"seen": 0.5}, {}, {"seen": 1.0}), train)
    items, predicted, observed = observed_predictions(
        "test_1", design, 3, test, test, _baselines(train, test), train, model=model)
    drawn = {i.id for i in observed}
    # every predicted cell's own answer replaced: nothing but country-mean-loo's other cells
    # (and the score) may change, and the drawn cells are the same
    changed = [i if i.id in drawn else i.replace(distribution=tuple(
        rng.dirichlet(np.ones(i.n_options)))) for i in test]
    items2, predicted2, observed2 = observed_predictions(
        "test_1", design, 3, changed, changed, _baselines(train, changed), train,
        model=(records, *model[1:]))
    assert [i.id for i in items2] == [i.id for i in items] and observed2 == observed
    for name in (SIMILAR, OBSERVED_MEAN, MODEL_OBSERVED, "region-mean", "uniform"):
        for new, old in zip(predicted2[name], predicted[name]):
            np.testing.assert_allclose(new, old, err_msg=name)


def test_the_priors_use_training_rows_and_the_drawn_cells_only():
    train, test = _world()
    design = ObservedDesign("populations", (1,))
    items, predicted, observed = observed_predictions(
        "test_1", design, 1, test, test, _baselines(train, test), train)
    # with one observed country per question the observed-mean is that country's answer
    by_question = {(i.survey, i.question_id): i.distribution for i in observed}
    for item, guess in zip(items, predicted[OBSERVED_MEAN]):
        np.testing.assert_allclose(guess, by_question[(item.survey, item.question_id)])
    # and the similarity-weighted mean of one answer is that answer too
    for similar, mean in zip(predicted[SIMILAR], predicted[OBSERVED_MEAN]):
        np.testing.assert_allclose(similar, mean)
    assert MODEL_OBSERVED not in predicted  # no model given


def test_rows_and_paired_comparisons_for_each_k():
    train, test = _world()
    rng = np.random.default_rng(1)
    records = _records(test, rng)
    model = (records, Calibration({"seen": 0.0}, {}, {"seen": 1.0}), train)
    found = observed_rows("test_1", ObservedDesign("populations", (1, 3)), test, test,
                          _baselines(train, test), train, model=model)
    rows = {(r["k"], r["method"]): r for r in found["rows"]}
    assert {k for k, _ in rows} == {1, 3}
    assert rows[(3, SIMILAR)]["n"] == 4 * 5 and rows[(3, SIMILAR)]["questions"] == 4
    # scale 0: the model adds nothing, so on the observed prior it is similar-populations
    # (its prior, from the same rows, floored at 1e-4)
    assert rows[(3, MODEL_OBSERVED)]["1-jsd"] == pytest.approx(rows[(3, SIMILAR)]["1-jsd"],
                                                               abs=1e-3)
    versus = {(c["k"], c["method"], c["versus"]) for c in found["comparisons"]}
    assert (1, SIMILAR, OBSERVED_MEAN) in versus and (3, MODEL_OBSERVED, SIMILAR) in versus
    one = next(c for c in found["comparisons"] if (c["k"], c["method"], c["versus"])
               == (1, SIMILAR, OBSERVED_MEAN))
    assert one["difference"] == pytest.approx(0.0, abs=1e-12)  # one answer: the same mean
    assert one["low"] <= one["difference"] <= one["high"]


def test_a_new_country_is_predicted_from_its_observed_questions():
    train, _ = _world()
    # Kenya held out of training: its answers to training questions are the split
    heldout = [i.replace(split="test_2") for i in train if i.population == "Kenya"]
    rest = [i for i in train if i.population != "Kenya"]
    found = observed_rows("test_2", ObservedDesign("questions", (3,)), heldout, heldout,
                          _baselines(rest, heldout), rest)
    methods = {r["method"] for r in found["rows"]}
    assert SIMILAR in methods and OBSERVED_MEAN not in methods
    assert {r["n"] for r in found["rows"]} == {8 - 3}
