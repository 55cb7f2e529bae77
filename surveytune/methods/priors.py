"""Training-data priors for prior-anchored prediction.

With a prior, the model's prediction for an item is ``softmax(letter logits + log prior)``,
where the prior is a baseline's prediction computed from the training data only (e.g.
``region-mean``: the mean answer of the training countries of the item's world region). The
model then learns how a population departs from what the training data already says, instead
of re-learning each question's average answer; for a question the training data lacks, the
prior falls back as the baseline does. Training rows get their prior with their own population
left out (``region-mean`` always leaves it out), as an unseen population would.

A :class:`Prior` keeps the few fields of the training rows it needs, so that it can be saved
beside an adapter and predictions after loading are the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surveytune.data.files import atomic_write_text
from surveytune.data.items import DataError, SurveyItem

PRIOR_FLOOR = 1e-4
"""Prior shares are clipped to at least this before the log: an option no training population
chose must stay reachable for the model."""


def floored_logs(predictions: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A baseline's predictions as log priors: ``log(max(share, PRIOR_FLOOR))``."""
    return [np.log(np.clip(p, PRIOR_FLOOR, None)) for p in predictions]


def _prior_functions() -> dict[str, Callable[[Sequence[SurveyItem], Sequence[SurveyItem]],
                                             list[np.ndarray]]]:
    from surveytune.methods.baselines import country_mean, population_style, region_mean

    return {"region-mean": region_mean, "country-mean": country_mean,
            "population-style": population_style}


PRIOR_NAMES = ("none", "region-mean", "country-mean", "population-style")
"""``none`` is the paper's method (no prior); the others name the baseline used as prior."""

_FIELDS = ("survey", "question_id", "population", "population_kind", "distribution")


@dataclass
class Prior:
    """A named baseline fitted on training rows, giving a log prior per item."""

    name: str
    train: list[SurveyItem]

    def __post_init__(self) -> None:
        if self.name not in PRIOR_NAMES or self.name == "none":
            raise ValueError(f"unknown prior {self.name!r}; choose one of "
                             f"{', '.join(PRIOR_NAMES)}")

    def log_priors(self, items: Sequence[SurveyItem]) -> list[np.ndarray]:
        """``log(max(prior, PRIOR_FLOOR))`` for each item, aligned with ``items``."""
        return floored_logs(_prior_functions()[self.name](self.train, items))

    def save(self, path: str | os.PathLike) -> None:
        """Write the prior (its name and the training rows' needed fields) as JSON."""
        rows = [{name: getattr(i, name) for name in _FIELDS} for i in self.train]
        atomic_write_text(path, json.dumps({"name": self.name, "rows": rows}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Prior:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            train = [SurveyItem(id=f"{r['survey']}:{r['question_id']}:{r['population']}",
                                survey=r["survey"], question_id=r["question_id"],
                                question="", options=("",) * len(r["distribution"]),
                                distribution=tuple(r["distribution"]),
                                population=r["population"],
                                population_kind=r["population_kind"])
                     for r in raw["rows"]]
            return cls(raw["name"], train)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a readable prior file: {exc}", file=path) from None


def make_prior(name: str, train_items: Sequence[SurveyItem]) -> Prior | None:
    """The prior of that name fitted on ``train_items``, or None for ``none``."""
    return None if name == "none" else Prior(name, list(train_items))


def calibration_groups(items: Sequence[SurveyItem], prior: Prior | None) -> list[str]:
    """``seen`` for items whose question the prior's training rows hold, else ``unseen``
    (every item without a prior): the groups of :mod:`surveytune.methods.calibration`."""
    known = set() if prior is None else {(i.survey, i.question_id) for i in prior.train}
    return ["seen" if (i.survey, i.question_id) in known else "unseen" for i in items]
