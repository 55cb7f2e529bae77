"""A model's score on any survey file beside the honest baselines, each with the paired
difference to the model and its bootstrap interval over questions.

Baselines shown: ``uniform`` always; with a reference file of past answers (a training split,
earlier waves), every competitor baseline that applies to its populations fitted on it
(``country-mean``, ``region-mean``, ``population-style``, ``group-mean`` for subgroups); and
``country-mean-loo`` within the file itself as a reference (it reads the other populations'
answers to the same question, which a real prediction does not have).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from surveytune.data.items import SurveyItem
from surveytune.methods.baselines import BASELINES, baseline_predictors, country_mean_loo, uniform
from surveytune.methods.metrics import METRIC_NAMES, metrics_table
from surveytune.methods.observed import SimilarPopulations
from surveytune.methods.stats import compare_to

__all__ = ["baseline_predictions", "scorecard"]

LOO = "country-mean-loo"
SIMILAR = "similar-populations"


def baseline_predictions(items: Sequence[SurveyItem],
                         reference: Sequence[SurveyItem] | None = None,
                         observed: Sequence[SurveyItem] | None = None
                         ) -> dict[str, list[np.ndarray]]:
    """The baselines' predictions for ``items``, by name, in table order (see the module
    docstring); ``country-mean-loo`` only when a question has two populations. With
    ``observed`` answers (cells the user already has; none of ``items``), also
    ``similar-populations`` (:mod:`surveytune.methods.observed`) fitted on the reference and
    the observations."""
    found: dict[str, list[np.ndarray]] = {"uniform": uniform(items)}
    if reference:
        for name, predict in baseline_predictors(reference).items():
            if BASELINES[name].competitor and name not in found:
                found[name] = predict(items)
    if observed:
        known = SimilarPopulations.fit([*(reference or ()), *observed])
        found[SIMILAR] = known.predict(items)
    questions = [(item.survey, item.question_id) for item in items]
    if len(set(questions)) < len(questions):
        found[LOO] = country_mean_loo(items)
    return found


def scorecard(items: Sequence[SurveyItem], predictions: Mapping[str, Sequence[Sequence[float]]],
              *, split: str = "data", reference: Sequence[SurveyItem] | None = None,
              observed: Sequence[SurveyItem] | None = None, metric: str = "1-jsd",
              level: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """One row per method: the models in ``predictions`` (name -> one distribution per item;
    the first is the one compared), then the baselines, each with its n, its number of
    questions and the mean of every metric. A baseline's row also holds the paired difference
    ``model - baseline`` of ``metric`` with its ``level`` interval resampling whole questions,
    and the verdict: ``met`` (the model is better: the interval lies above 0), ``tied`` or
    ``missed``."""
    if not predictions:
        raise ValueError("scorecard needs the predictions of at least one model")
    model = next(iter(predictions))
    baselines = baseline_predictions(items, reference, observed)
    tables = {name: metrics_table(items, predicted)
              for name, predicted in {**predictions, **baselines}.items()}
    scores = {name: list(table[metric]) for name, table in tables.items()}
    differences = compare_to(items, scores, model, list(baselines), level=level, seed=seed)
    n_questions = len({(item.survey, item.question_id) for item in items})
    rows = []
    for name, table in tables.items():
        kind = ("model" if name in predictions else
                "reference" if name == LOO else "competitor")
        row: dict[str, Any] = {"split": split, "method": name, "kind": kind, "n": len(items),
                               "questions": n_questions}
        row.update({m: float(table[m].mean()) for m in METRIC_NAMES})
        if name in differences:
            row.update({"versus": model, "metric": metric,
                        **differences[name].difference_fields()})
        rows.append(row)
    return rows
