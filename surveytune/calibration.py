"""Calibration of a fine-tuned model's letter distribution against its prior, fit on
validation data.

The calibrated prediction for an item is ``softmax(scale * log p_model + log prior)``: ``scale``
0 keeps the prior alone, 1 is plain prior anchoring, and without a prior it is a temperature
(``1 / scale``). The scale is fit separately for items whose question the training data holds
(``seen``: the prior already knows the question's answers, the model only has to say how the
population departs from them) and for the others (``unseen``: the prior is a fallback and the
model carries the prediction), because the two need very different amounts of the model. Each is
chosen on a grid by the mean KL(human || prediction) of validation items of its group (the
training loss), never on a test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SCALES = tuple(round(0.1 * i, 1) for i in range(21))
"""The grid the scales are chosen from: 0, 0.1, ..., 2."""

MIN_ITEMS = 20
"""A group with fewer validation items keeps the scale 1 (too few to fit)."""

GROUPS = ("seen", "unseen")


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _combine(model: Sequence[float], log_prior: Sequence[float] | None,
             scale: float) -> np.ndarray:
    logits = scale * np.log(np.clip(np.asarray(model, dtype=float), 1e-12, None))
    if log_prior is not None:
        logits = logits + np.asarray(log_prior, dtype=float)
    return _softmax(logits)


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
    """One scale per group (see the module docstring); a missing group uses 1."""

    scales: dict[str, float] = field(default_factory=dict)
    fitted_on: dict[str, int] = field(default_factory=dict)  # group -> validation items

    def apply(self, model: Sequence[Sequence[float]], log_priors: Sequence | None,
              groups: Sequence[str]) -> list[np.ndarray]:
        """Calibrated predictions from the model's own (prior-free) distributions."""
        return [_combine(m, None if log_priors is None else log_priors[i],
                         self.scales.get(groups[i], 1.0))
                for i, m in enumerate(model)]

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        return {"scales": dict(self.scales), "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_dict(cls, raw: dict) -> Calibration:
        scales = raw.get("scales")
        if not isinstance(scales, dict) or not all(
                group in GROUPS and isinstance(value, (int, float)) and value >= 0
                for group, value in scales.items()):
            raise ValueError(f"not a calibration record: {raw!r}")
        return cls({g: float(v) for g, v in scales.items()}, dict(raw.get("fitted_on") or {}))


def fit_calibration(model: Sequence[Sequence[float]], log_priors: Sequence | None,
                    humans: Sequence[Sequence[float]], groups: Sequence[str],
                    scales: Sequence[float] = SCALES, min_items: int = MIN_ITEMS
                    ) -> Calibration:
    """Choose each group's scale on these validation items (ties: the value closest to 1)."""
    if not len(model) == len(humans) == len(groups):
        raise ValueError("one model distribution, human distribution and group per item")
    chosen, counts = {}, {}
    for group in GROUPS:
        index = [i for i, g in enumerate(groups) if g == group]
        counts[group] = len(index)
        if len(index) < min_items:
            continue
        losses = {}
        for scale in scales:
            predictions = [_combine(model[i], None if log_priors is None else log_priors[i],
                                    scale) for i in index]
            losses[scale] = _mean_kl([humans[i] for i in index], predictions)
        chosen[group] = min(losses, key=lambda s: (losses[s], abs(s - 1.0)))
    return Calibration(chosen, counts)
