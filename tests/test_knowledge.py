"""Flagging questions whose predictions say little: hand-computed cases, and the human
figures behind the thresholds recomputed from the shared data."""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from surveytune.data.items import make_item
from surveytune.methods.knowledge import (
    ALIKE_BETWEEN_POPULATIONS,
    HUMAN_MOST_ALIKE,
    HUMAN_NEAREST_UNIFORM,
    NEAR_UNIFORM,
    doubts,
)

DATA = Path(os.environ.get("SURVEYTUNE_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))


def _items(question_id: str, populations: list[str], k: int = 4):
    return [make_item(survey="s", question_id=question_id, question=f"{question_id}?",
                      options=[f"o{i}" for i in range(k)], distribution=[1 / k] * k,
                      population=p) for p in populations]


def test_the_example_of_near_uniform_predictions_alike_for_every_country_is_flagged():
    items = _items("god", ["Egypt", "Sweden", "Japan"])
    predictions = [[.242, .251, .246, .261], [.238, .264, .236, .262], [.243, .257, .238, .262]]
    (doubt,) = doubts(items, predictions)
    pairs = [1 - jensenshannon(a, b) for a, b in combinations(np.array(predictions), 2)]
    assert doubt.between == pytest.approx(np.mean(pairs)) and doubt.alike and doubt.near_uniform
    assert doubt.populations == 3
    line = doubt.message("the calibration gives the model weight 0 on unseen questions")
    assert "hardly differ between its 3 populations" in line and "close to uniform" in line
    assert "weight 0" in line and "what would help" in line and "\n" not in line


def test_predictions_that_differ_like_people_are_not_flagged():
    items = _items("q", ["Egypt", "Sweden"], k=2)
    assert doubts(items, [[0.9, 0.1], [0.2, 0.8]]) == []


def test_one_population_is_judged_by_its_distance_to_uniform_alone():
    items = _items("q", ["Egypt"], k=2)
    (doubt,) = doubts(items, [[0.51, 0.49]])
    assert doubt.between is None and doubt.near_uniform and not doubt.alike
    assert doubts(items, [[0.9, 0.1]]) == []


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared data folder is absent")
@pytest.mark.parametrize("name", ["wvs-unified", "subpop-gss"])
def test_the_thresholds_lie_above_every_question_of_the_shared_data(name):
    from surveytune.data.loaders import find_data_file, load_items

    groups: dict = {}
    for item in load_items(find_data_file(DATA, name)):
        groups.setdefault((item.survey, item.question_id), []).append(item.distribution)
    alike, uniform = [], []
    for dists in groups.values():
        stacked = np.array(dists)
        if len(dists) > 1:
            first, second = np.array(list(combinations(range(len(dists)), 2))).T
            alike.append(np.mean(1 - jensenshannon(stacked[first], stacked[second], axis=1)))
        flat = np.full_like(stacked, 1 / stacked.shape[1])
        uniform.append(np.mean(1 - jensenshannon(stacked, flat, axis=1)))
    assert max(alike) == pytest.approx(HUMAN_MOST_ALIKE[name], abs=5e-4)
    assert max(uniform) == pytest.approx(HUMAN_NEAREST_UNIFORM[name], abs=5e-4)
    assert ALIKE_BETWEEN_POPULATIONS > max(alike) and NEAR_UNIFORM > max(uniform)
