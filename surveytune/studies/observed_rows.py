"""What observations buy: a study's rows for k observed cells (issue 19).

For a split of unseen questions, k populations of each question are drawn as observed (a
pilot, a partner survey); for a split of unseen populations, k questions of each population
(a new country's first answers). Every scored item that is not drawn is predicted from the
training rows plus the observed cells, and scored beside the baselines on the same items:

    similar-populations          the observed and training answers, weighted by how alike
                                 each population is (surveytune.methods.observed)
    observed-mean                (unseen questions) the plain mean of the k observed answers
    fine-tuned, observed prior   the fine-tuned model anchored on similar-populations
                                 (Simulator.anchored_on), from the model's own distribution
                                 its predictions record and its calibration
    uniform, region-mean         as in the study's rows (training rows only)
    country-mean-loo             reference: every other population of the split

The draws are seeded per split and unit and nested (the k = 3 draw holds the k = 1 draw). A
unit with k or fewer cells is left out of that k's rows (their counts are recorded). The
cells predicted are never among the observed ones, and no prediction reads a predicted cell's
own answer: only the training rows and the drawn cells.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surveytune.data.items import SurveyItem
from surveytune.data.records import PredictionRecord
from surveytune.methods.calibration import Calibration
from surveytune.methods.metrics import metrics_table
from surveytune.methods.observed import ObservedPrior, SimilarPopulations
from surveytune.methods.stats import compare_to

__all__ = ["OBSERVE_KINDS", "ObservedDesign", "draw_observed", "observed_rows"]

OBSERVE_KINDS = ("populations", "questions")
SIMILAR = "similar-populations"
OBSERVED_MEAN = "observed-mean"
MODEL_OBSERVED = "fine-tuned, observed prior"
BASELINES = ("uniform", "region-mean", "country-mean-loo")
VERSUS = {SIMILAR: (OBSERVED_MEAN, "region-mean", "country-mean-loo", "uniform"),
          MODEL_OBSERVED: (SIMILAR, OBSERVED_MEAN, "region-mean")}
"""Each method compared (paired, over questions) with these, where they were scored."""


ModelParts = tuple[Sequence[PredictionRecord], Calibration, Sequence[SurveyItem]]
"""The fine-tuned model's records of the scored items, its calibration, its prior's rows."""


@dataclass(frozen=True)
class ObservedDesign:
    """``observe``: ``populations`` (k observed populations of each question: a split of
    unseen questions) or ``questions`` (k observed questions of each population: a split of
    unseen populations); ``ks``: the values of k."""

    observe: str
    ks: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.observe not in OBSERVE_KINDS or not self.ks or min(self.ks) < 1:
            raise ValueError(f"not an observed design: {self!r}")


def _unit(item: SurveyItem, observe: str) -> tuple[str, ...]:
    """What k is counted in: the question (populations observed) or the population."""
    return (item.survey, item.question_id) if observe == "populations" else (item.population,)


def draw_observed(items: Sequence[SurveyItem], observe: str, k: int, seed: str
                  ) -> tuple[list[SurveyItem], set[str]]:
    """The k observed cells of each unit with more than k cells (a seeded, nested draw) and
    the ids of the units' other cells (those that may be predicted)."""
    units: dict[tuple[str, ...], list[SurveyItem]] = {}
    for item in items:
        units.setdefault(_unit(item, observe), []).append(item)
    observed, others = [], set()
    for key in sorted(units):
        cells = sorted(units[key], key=lambda i: i.id)
        if len(cells) <= k:
            continue
        random.Random(f"{seed}:{'/'.join(key)}").shuffle(cells)
        observed += cells[:k]
        others |= {cell.id for cell in cells[k:]}
    return observed, others


def _observed_mean(observed: Sequence[SurveyItem], items: Sequence[SurveyItem]
                   ) -> list[np.ndarray]:
    by_question: dict[tuple[str, str], list[np.ndarray]] = {}
    for cell in observed:
        by_question.setdefault((cell.survey, cell.question_id), []).append(
            np.asarray(cell.distribution, dtype=float))
    return [np.mean(by_question[(i.survey, i.question_id)], axis=0) for i in items]


def _model_on_observed(records: Sequence[PredictionRecord], items: Sequence[SurveyItem],
                       calibration: Calibration, prior: ObservedPrior) -> list[np.ndarray]:
    return calibration.apply([r.model for r in records], prior.log_priors(items),
                             prior.groups(items))


def observed_predictions(split: str, design: ObservedDesign, k: int,
                         split_items: Sequence[SurveyItem], scored: Sequence[SurveyItem],
                         baselines: dict[str, list], train: Sequence[SurveyItem], *,
                         model: ModelParts | None = None
                         ) -> tuple[list[SurveyItem], dict[str, list], list[SurveyItem]]:
    """For one k: the scored items predicted (those not drawn), each method's predictions
    of them by name, and the drawn cells (see :func:`observed_rows` for the arguments)."""
    observed, others = draw_observed(split_items, design.observe, k, seed=split)
    index = [n for n, item in enumerate(scored) if item.id in others]
    items = [scored[n] for n in index]
    if not items:
        return [], {}, observed
    predicted = {name: [baselines[name][n] for n in index] for name in BASELINES
                 if name in baselines}
    predicted[SIMILAR] = SimilarPopulations.fit([*train, *observed]).predict(items)
    if design.observe == "populations":
        predicted[OBSERVED_MEAN] = _observed_mean(observed, items)
    if model is not None and all(r.model is not None for r in model[0]):
        records, calibration, prior_rows = model
        predicted[MODEL_OBSERVED] = _model_on_observed(
            [records[n] for n in index], items, calibration,
            ObservedPrior.fit([*prior_rows, *observed]))
    return items, predicted, observed


def observed_rows(split: str, design: ObservedDesign, split_items: Sequence[SurveyItem],
                  scored: Sequence[SurveyItem], baselines: dict[str, list],
                  train: Sequence[SurveyItem], *,
                  model: ModelParts | None = None,
                  log: Callable[[str], None] = lambda _: None) -> dict[str, list]:
    """The k rows of one split: ``{"rows": [...], "comparisons": [...]}``.

    ``split_items``: the whole split (observed cells are drawn from it); ``scored``: its
    scored items and ``baselines`` their predictions by name; ``train``: the training rows
    the baselines were fitted on. ``model``: the fine-tuned model's records of ``scored``
    (with the model's own distribution), its calibration and its prior's training rows;
    without it (or when the records hold no own distribution) its row is left out."""
    rows: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    for k in design.ks:
        items, predicted, observed = observed_predictions(
            split, design, k, split_items, scored, baselines, train, model=model)
        if not items:
            continue
        scores = {name: list(metrics_table(items, p)["1-jsd"]) for name, p in predicted.items()}
        questions = len({(i.survey, i.question_id) for i in items})
        for name, values in scores.items():
            rows.append({"split": split, "observe": design.observe, "k": k, "method": name,
                         "n": len(items), "questions": questions,
                         "observed_cells": len(observed), "1-jsd": float(np.mean(values))})
        for method, versus in VERSUS.items():
            if method not in scores:
                continue
            for other, interval in compare_to(items, scores, method,
                                              [v for v in versus if v in scores]).items():
                comparisons.append({"split": split, "observe": design.observe, "k": k,
                                    "method": method, "versus": other, "metric": "1-jsd",
                                    "n": interval.n_items, "questions": interval.n_clusters,
                                    **interval.difference_fields()})
        log(f"      {split}, k={k} observed {design.observe}: {len(items)} items predicted, "
            f"{SIMILAR} {np.mean(scores[SIMILAR]):.3f}")
    return {"rows": rows, "comparisons": comparisons}
