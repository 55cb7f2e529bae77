"""region-mean and population-style on hand-computed cases: training populations only."""

from __future__ import annotations

import numpy as np

from surveytune.data.items import make_item
from surveytune.data.regions import region_of, regions
from surveytune.methods.baselines import population_style, region_mean


def _item(qid: str, population: str, dist, split: str | None = None):
    return make_item(survey="toy", question_id=qid, question=f"Question {qid}?",
                     options=[f"opt{i}" for i in range(len(dist))], distribution=list(dist),
                     population=population, split=split)


# Sweden and Norway: Northern Europe; Germany: Western Europe; Japan: Eastern Asia.
TRAIN = [
    _item("q1", "Sweden", [0.8, 0.2]),
    _item("q1", "Norway", [0.6, 0.4]),
    _item("q1", "Germany", [0.4, 0.6]),
    _item("q1", "Japan", [0.1, 0.9]),
    _item("q2", "Japan", [0.5, 0.5]),
    _item("q3", "Sweden", [0.3, 0.3, 0.4]),
]


def test_regions_come_from_country_converter():
    assert region_of("Sweden").subregion == "Northern Europe"
    assert region_of("Sweden").continent == "Europe"
    assert region_of("Namibia").subregion == "Southern Africa"  # ISO2 "NA" is not missing
    assert regions(["Borduria", "Japan"])["Borduria"] is None


def test_region_mean_uses_the_nearest_level_with_training_countries():
    denmark, france, chile = (_item("q1", name, [0.5, 0.5]) for name in
                              ("Denmark", "France", "Chile"))
    preds = region_mean(TRAIN, [denmark, france, chile])
    np.testing.assert_allclose(preds[0], [0.7, 0.3])  # Sweden, Norway (Northern Europe)
    np.testing.assert_allclose(preds[1], [0.4, 0.6])  # Germany (Western Europe)
    # Chile: no South American or American training country -> all training countries
    np.testing.assert_allclose(preds[2], [0.475, 0.525])


def test_region_mean_falls_back_to_continent_then_leaves_the_item_out():
    austria_like = _item("q1", "Poland", [0.5, 0.5])  # Eastern Europe: none -> Europe
    np.testing.assert_allclose(region_mean(TRAIN, [austria_like])[0], [0.6, 0.4])
    # A training row is predicted without its own answer (leave-one-out).
    np.testing.assert_allclose(region_mean(TRAIN, [TRAIN[0]])[0], [0.6, 0.4])
    # A question only the item's own population answers: no leak of its own answer.
    np.testing.assert_allclose(region_mean(TRAIN, [TRAIN[4]])[0], [0.5, 0.5])
    # A question no training country answers: country-mean's fallback (same option count).
    unseen = _item("q9", "Sweden", [0.5, 0.5])
    np.testing.assert_allclose(region_mean(TRAIN, [unseen])[0],
                               np.mean([d.distribution for d in TRAIN[:5]], axis=0))


def test_baselines_ignore_the_labels_of_evaluated_items():
    test = [_item("q1", "Denmark", [0.9, 0.1]), _item("q9", "Sweden", [0.2, 0.8])]
    relabelled = [i.replace(distribution=tuple(reversed(i.distribution))) for i in test]
    for baseline in (region_mean, population_style):
        for a, b in zip(baseline(TRAIN, test), baseline(TRAIN, relabelled)):
            np.testing.assert_array_equal(a, b)


def test_population_style_is_the_populations_mean_over_other_questions():
    preds = population_style(TRAIN, [_item("q9", "Japan", [1, 0]),
                                     _item("q2", "Japan", [1, 0]),
                                     _item("q9", "Chile", [1, 0]),
                                     _item("q8", "Sweden", [1, 0, 0, 0])])
    np.testing.assert_allclose(preds[0], [0.3, 0.7])  # Japan's q1 and q2
    np.testing.assert_allclose(preds[1], [0.1, 0.9])  # its own question q2 left out
    np.testing.assert_allclose(preds[2], [0.5, 0.5])  # unseen population: uniform
    np.testing.assert_allclose(preds[3], [0.25] * 4)  # no 4-option question: uniform
