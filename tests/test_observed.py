"""Similarity-weighted predictions from known answers: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from surveytune.data.items import make_item
from surveytune.methods.observed import PRIOR_QUESTIONS, TEMPERATURES, SimilarPopulations


def _item(question: str, population: str, dist) -> object:
    return make_item(survey="s", question_id=question, question=f"{question}?",
                     options=[f"o{i}" for i in range(len(dist))], distribution=dist,
                     population=population)


KNOWN = [_item("q1", "France", [0.9, 0.1]), _item("q1", "Spain", [0.85, 0.15]),
         _item("q1", "Japan", [0.1, 0.9]),
         _item("q2", "France", [0.2, 0.8]), _item("q2", "Spain", [0.25, 0.75]),
         _item("q2", "Japan", [0.7, 0.3]),
         _item("q3", "Spain", [0.6, 0.4]), _item("q3", "Japan", [0.1, 0.9])]


def test_the_most_alike_population_weighs_most():
    table = SimilarPopulations.fit(KNOWN, temperature=0.01)
    (france,) = table.predict([_item("q3", "France", [0.5, 0.5])])
    # France answers q1 and q2 like Spain, unlike Japan: its q3 is nearly Spain's
    np.testing.assert_allclose(france, [0.6, 0.4], atol=0.01)
    loose = SimilarPopulations.fit(KNOWN, temperature=1.0).predict(
        [_item("q3", "France", [0.5, 0.5])])[0]
    assert 0.35 < loose[0] < 0.6  # a high temperature weighs both nearly alike


def test_known_cells_are_returned_as_known_and_never_predict_themselves():
    table = SimilarPopulations.fit(KNOWN, temperature=0.01)
    (spain,) = table.predict([_item("q3", "Spain", [0.5, 0.5])])
    np.testing.assert_allclose(spain, [0.6, 0.4])
    # the similarity of Spain and Japan leaves the predicted question out
    def one_minus_jsd(a, b):
        return 1 - jensenshannon(a, b)

    q1 = one_minus_jsd([0.85, 0.15], [0.1, 0.9])
    q2 = one_minus_jsd([0.25, 0.75], [0.7, 0.3])
    q3 = one_minus_jsd([0.6, 0.4], [0.1, 0.9])
    # Spain and Japan are on different continents: the prior is the mean similarity of such
    # pairs (France-Japan on q1, q2; Spain-Japan on q1, q2, q3), worth PRIOR_QUESTIONS answers
    far = (one_minus_jsd([0.9, 0.1], [0.1, 0.9]) + one_minus_jsd([0.2, 0.8], [0.7, 0.3])
           + q1 + q2 + q3) / 5
    n0 = PRIOR_QUESTIONS
    assert table._similarity("Spain", "Japan", ("s", "q3")) == pytest.approx(
        (q1 + q2 + n0 * far) / (2 + n0))
    assert table._similarity("Spain", "Japan", ("s", "q9")) == pytest.approx(
        (q1 + q2 + q3 + n0 * far) / (3 + n0))


def test_an_unseen_country_is_weighted_by_region_and_an_unseen_question_falls_back():
    table = SimilarPopulations.fit(KNOWN, temperature=0.01)
    (germany,) = table.predict([_item("q3", "Germany", [0.5, 0.5])])
    np.testing.assert_allclose(germany, [0.6, 0.4], atol=1e-6)  # Spain, Europe; not Japan
    (new,) = table.predict([_item("q7", "France", [0.3, 0.3, 0.4])])
    np.testing.assert_allclose(new, [1 / 3] * 3)  # no known question has 3 options
    (two,) = table.predict([_item("q7", "France", [0.5, 0.5])])
    np.testing.assert_allclose(two, np.mean([i.distribution for i in KNOWN], axis=0))


def test_the_temperature_is_chosen_on_the_known_answers():
    table = SimilarPopulations.fit(KNOWN, seed=0)
    assert table.temperature in TEMPERATURES
    assert SimilarPopulations.fit(KNOWN, seed=0).temperature == table.temperature
