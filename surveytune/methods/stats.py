"""Uncertainty of a score difference: a paired bootstrap that resamples whole questions.

The items of one question (its populations) are not independent: a method that is good on a
question is good on most of its populations. Resampling items would make intervals too
narrow, so the bootstrap resamples questions with replacement and keeps each drawn
question's items together (a cluster bootstrap), paired: both methods' scores of the same
items are resampled together.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SAME = 1e-9
"""Differences this small are the same prediction written two ways (floating-point noise)."""


@dataclass(frozen=True)
class Interval:
    """A mean over items and its percentile bootstrap interval (``level``, e.g. 0.95)."""

    mean: float
    low: float
    high: float
    level: float
    n_items: int
    n_clusters: int

    def verdict(self) -> str:
        """``above`` when the whole interval is above 0, ``below`` when below, else ``tied``
        (also two predictions that differ by rounding only: within :data:`SAME`)."""
        if self.low > SAME:
            return "above"
        if self.high < -SAME:
            return "below"
        return "tied"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def difference_fields(self) -> dict[str, Any]:
        """The fields a comparison row carries (results.json ``comparisons``, a scorecard's
        baseline rows): the difference, its interval and level, and the goal's verdict."""
        return {"difference": self.mean, "low": self.low, "high": self.high,
                "level": self.level, "verdict": GOAL_VERDICTS[self.verdict()]}

    def __str__(self) -> str:
        return (f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
                f"({self.level:.0%}, {self.n_items} items, {self.n_clusters} questions)")


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float],
                     clusters: Sequence[Hashable], *, n_resamples: int = 2000,
                     level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``scores_a - scores_b`` over items and its interval, resampling ``clusters``
    (each item's question) with replacement; seeded, so the same inputs give the same
    interval."""
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(clusters) != len(a):
        raise ValueError("paired_bootstrap needs two score lists and one cluster per item, "
                         "all of one length")
    if len(a) == 0:
        raise ValueError("paired_bootstrap needs at least one item")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    diff = a - b
    names = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    index = np.array([names[c] for c in clusters])
    sums = np.bincount(index, weights=diff, minlength=len(names))
    counts = np.bincount(index, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_resamples, len(names)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(diff.mean()), float(low), float(high), level, len(a), len(names))


GOAL_VERDICTS = {"above": "met", "tied": "tied", "below": "missed"}
"""A goal "beat X" is met only when the interval of the difference lies above 0."""


def question_clusters(items: Sequence[Any]) -> list[tuple[str, str]]:
    """Each item's question, the unit the bootstrap resamples."""
    return [(item.survey, item.question_id) for item in items]


def compare_to(items: Sequence[Any], scores: dict[str, Sequence[float]], method: str,
               others: Sequence[str], *, level: float = 0.95, seed: int = 0
               ) -> dict[str, Interval]:
    """The paired difference ``method - other`` of per-item ``scores`` (e.g. 1-jsd) for each
    of ``others``, with its interval resampling the items' questions."""
    clusters = question_clusters(items)
    return {other: paired_bootstrap(scores[method], scores[other], clusters, level=level,
                                    seed=seed) for other in others}
