"""Calibration of a fine-tuned model's letter distribution against its prior, fit on
validation data.

The calibrated prediction for an item is
``softmax(scale * log p_model + prior_weight * log prior)``: ``scale`` 0 keeps the prior alone,
``scale`` 1 with ``prior_weight`` 1 is plain prior anchoring, ``prior_weight`` 0 drops the
prior, and without a prior ``scale`` is an inverse temperature. Both are fit separately for
items whose question the training data holds (``seen``: the prior already knows the question's
answers, the model only has to say how the population departs from them) and for the others
(``unseen``: the prior is only a fallback, such as the mean of all training questions with the
same number of options, and may be worse than none), because the two need very different
amounts of each. They are chosen on a grid by the mean KL(human || prediction) of validation
items of the group (the training loss), never on a test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SCALES = tuple(round(0.1 * i, 1) for i in range(21))
"""The grid the model's scale is chosen from: 0, 0.1, ..., 2."""

PRIOR_WEIGHTS = (0.0, 0.5, 1.0)
"""The grid the prior's weight is chosen from."""

MIN_ITEMS = 20
"""A group with fewer validation items keeps the scale 1 (too few to fit)."""

GROUPS = ("seen", "unseen")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _combine(model: Sequence[float], log_prior: Sequence[float] | None, scale: float,
             prior_weight: float = 1.0) -> np.ndarray:
    logits = scale * np.log(np.clip(np.asarray(model, dtype=float), 1e-12, None))
    if log_prior is not None and prior_weight:
        logits = logits + prior_weight * np.asarray(log_prior, dtype=float)
    return _softmax(logits)


def anchor(model: Sequence[float], log_prior: Sequence[float] | None) -> np.ndarray:
    """Plain prior anchoring of a model distribution (scale 1, prior weight 1): the same
    numbers as adding the log prior to the letter logits before the softmax."""
    return _combine(model, log_prior, 1.0)


def _mean_kl(humans: Sequence[Sequence[float]], predictions: Sequence[np.ndarray]) -> float:
    total = 0.0
    for human, prediction in zip(humans, predictions):
        p = np.asarray(human, dtype=float)
        mask = p > 0
        total += float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.clip(prediction[mask],
                                                                            1e-12, None)))))
    return total / len(humans)


@dataclass
class Calibration:
    """A model scale and a prior weight per group (see the module docstring); a group without
    a fitted value uses 1."""

    scales: dict[str, float] = field(default_factory=dict)
    fitted_on: dict[str, int] = field(default_factory=dict)  # group -> validation items
    prior_weights: dict[str, float] = field(default_factory=dict)

    def apply(self, model: Sequence[Sequence[float]], log_priors: Sequence | None,
              groups: Sequence[str]) -> list[np.ndarray]:
        """Calibrated predictions from the model's own (prior-free) distributions."""
        return [_combine(m, None if log_priors is None else log_priors[i],
                         self.scales.get(groups[i], 1.0),
                         self.prior_weights.get(groups[i], 1.0))
                for i, m in enumerate(model)]

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        return {"scales": dict(self.scales), "prior_weights": dict(self.prior_weights),
                "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_dict(cls, raw: dict) -> Calibration:
        scales, weights = raw.get("scales"), raw.get("prior_weights", {})
        for values in (scales, weights):
            if not isinstance(values, dict) or not all(
                    group in GROUPS and isinstance(value, (int, float)) and value >= 0
                    for group, value in values.items()):
                raise ValueError(f"not a calibration record: {raw!r}")
        return cls({g: float(v) for g, v in scales.items()}, dict(raw.get("fitted_on") or {}),
                   {g: float(v) for g, v in weights.items()})


def fit_calibration(model: Sequence[Sequence[float]], log_priors: Sequence | None,
                    humans: Sequence[Sequence[float]], groups: Sequence[str],
                    scales: Sequence[float] = SCALES,
                    prior_weights: Sequence[float] = PRIOR_WEIGHTS, min_items: int = MIN_ITEMS
                    ) -> Calibration:
    """Choose each group's scale and prior weight on these validation items (ties: the
    values closest to plain anchoring, 1 and 1). Without priors only the scale is fit."""
    if not len(model) == len(humans) == len(groups):
        raise ValueError("one model distribution, human distribution and group per item")
    chosen, weights, counts = {}, {}, {}
    candidates = [(s, w) for s in scales
                  for w in (prior_weights if log_priors is not None else (1.0,))]
    for group in GROUPS:
        index = [i for i, g in enumerate(groups) if g == group]
        counts[group] = len(index)
        if len(index) < min_items:
            continue
        losses = {}
        for scale, weight in candidates:
            predictions = [_combine(model[i], None if log_priors is None else log_priors[i],
                                    scale, weight) for i in index]
            losses[(scale, weight)] = _mean_kl([humans[i] for i in index], predictions)
        best = min(losses, key=lambda c: (losses[c], abs(c[0] - 1.0) + abs(c[1] - 1.0)))
        chosen[group], weights[group] = best
    return Calibration(chosen, counts, weights if log_priors is not None else {})
