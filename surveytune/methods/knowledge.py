"""Saying when the model does not know: predictions that hardly differ between the populations
asked for, or that sit close to uniform.

A simulator that gives Egypt, Sweden and Japan the same near-uniform answer to "How important
is God in your life?" has nothing to say about them, whatever its decimals suggest. People
differ more than that on every question of the shared surveys, so a question is flagged when
its predictions are more alike between populations, or closer to uniform, than the human
answers of any question there (:data:`ALIKE_BETWEEN_POPULATIONS`, :data:`NEAR_UNIFORM`; the
human figures are recomputed from the shared data by tests/test_knowledge.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from surveytune.data.items import SurveyItem
from surveytune.methods.metrics import one_minus_jsd

HUMAN_MOST_ALIKE = {"wvs-unified": 0.919, "subpop-gss": 0.957}
"""The largest mean pairwise 1-jsd between populations of one question in the shared data
(WVS wave 7 countries; GSS 2022 US subgroups), keyed by data file; tests recompute them."""

HUMAN_NEAREST_UNIFORM = {"wvs-unified": 0.912, "subpop-gss": 0.946}
"""The largest mean 1-jsd to uniform of one question's human answers in the shared data."""

ALIKE_BETWEEN_POPULATIONS = 0.96
"""Mean pairwise 1-jsd between the populations' predictions at or above which a question is
flagged: above every question of :data:`HUMAN_MOST_ALIKE`."""

NEAR_UNIFORM = 0.96
"""Mean 1-jsd between the predictions and uniform at or above which a question is flagged:
above every question of :data:`HUMAN_NEAREST_UNIFORM`."""

ADVICE = ("what would help: real answers of some of these populations to this question, or "
          "of these populations to related questions, as training data; or a larger model")


@dataclass(frozen=True)
class Doubt:
    """One question whose predictions say little."""

    survey: str
    question_id: str
    question: str
    populations: int
    between: float | None  # mean pairwise 1-jsd between populations (None: one population)
    to_uniform: float      # mean 1-jsd to uniform

    @property
    def alike(self) -> bool:
        return self.between is not None and self.between >= ALIKE_BETWEEN_POPULATIONS

    @property
    def near_uniform(self) -> bool:
        return self.to_uniform >= NEAR_UNIFORM

    def message(self, model_note: str = "") -> str:
        """One line for the user: what was seen, against what, and what would help."""
        found = []
        if self.alike:
            found.append(f"hardly differ between its {self.populations} populations (mean "
                         f"pairwise 1-jsd {self.between:.3f}; people in the shared surveys "
                         f"differ more on every question, at most "
                         f"{max(HUMAN_MOST_ALIKE.values()):.3f})")
        if self.near_uniform:
            found.append(f"sit close to uniform (1-jsd to uniform {self.to_uniform:.3f}; human "
                         f"answers at most {max(HUMAN_NEAREST_UNIFORM.values()):.3f})")
        note = f"; {model_note}" if model_note else ""
        return (f"question {self.question_id!r}: the predictions {' and '.join(found)}{note}; "
                f"{ADVICE}")


def doubts(items: Sequence[SurveyItem], predictions: Sequence[Sequence[float]]) -> list[Doubt]:
    """The questions (in first-seen order) whose predictions are alike between populations or
    near uniform; ``predictions[i]`` is the distribution predicted for ``items[i]``."""
    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    groups: dict[tuple[str, str], list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault((item.survey, item.question_id), []).append(index)
    found = []
    for (survey, question_id), indices in groups.items():
        stacked = np.array([np.asarray(predictions[i], dtype=float) for i in indices])
        uniform = np.full_like(stacked, 1.0 / stacked.shape[1])
        to_uniform = float(one_minus_jsd(stacked, uniform).mean())
        between = None
        if len(indices) > 1:
            pairs = np.array(list(combinations(range(len(indices)), 2)))
            between = float(one_minus_jsd(stacked[pairs[:, 0]], stacked[pairs[:, 1]]).mean())
        doubt = Doubt(survey, question_id, items[indices[0]].question, len(indices), between,
                      to_uniform)
        if doubt.alike or doubt.near_uniform:
            found.append(doubt)
    return found


def doubts_in_table(frame: Any) -> list[Doubt]:
    """:func:`doubts` of a long-form prediction table (``survey, question_id, question,
    population, option, share`` rows, options in order; see
    :mod:`surveytune.data.questionnaire`)."""
    from surveytune.data.items import make_item

    items, predictions = [], []
    for (survey, question_id, population), rows in frame.groupby(
            ["survey", "question_id", "population"], sort=False):
        shares = list(rows["share"])
        items.append(make_item(survey=survey, question_id=question_id,
                               question=rows["question"].iloc[0], options=list(rows["option"]),
                               distribution=shares, population=population,
                               population_kind="custom"))
        predictions.append(shares)
    return doubts(items, predictions)
