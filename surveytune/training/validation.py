"""Validation during training: the validation loss and metrics, and the calibration fit on
the validation sets with the kept weights (:mod:`surveytune.methods.calibration`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from surveytune.backends.scoring import score_token_ids
from surveytune.data.items import SurveyItem
from surveytune.methods.calibration import Calibration, anchor, fit_calibration
from surveytune.methods.metrics import METRIC_NAMES, metrics_table, summarize
from surveytune.methods.priors import Prior, calibration_groups
from surveytune.training.batches import Batchable
from surveytune.training.losses import LOSSES, padded_targets


def model_distributions(model: Any, data: Batchable, letter_ids: list[int], pad_id: int,
                        batch_size: int, desc: str, progress: bool = True) -> list[np.ndarray]:
    """The model's own (prior-free) letter distributions for pre-tokenised items."""
    return [p.distribution for p in score_token_ids(
        model, data.token_ids, data.n_options, letter_ids, pad_id, batch_size=batch_size,
        desc=desc, progress=progress)]


def validate(model: Any, valid: Batchable, items: Sequence[SurveyItem], letter_ids: list[int],
             pad_id: int, config: Any, name: str = "valid"
             ) -> tuple[dict[str, float], list[np.ndarray]]:
    """Validation loss (the training loss on these items) and the metrics of the data layer,
    as ``{name}_loss`` and ``{name}_{metric}``. ``config`` is the run's
    :class:`~surveytune.training.config.TrainConfig` (its ``loss`` and ``batch_size``).

    Also returns the model's own (prior-free) distributions: the prediction anchors them on
    the items' priors, and the calibration of the kept weights reuses them.
    """
    own = model_distributions(model, valid, letter_ids, pad_id, config.batch_size,
                              f"validating ({name})")
    dists = own if valid.log_priors is None else [
        anchor(dist, log_prior) for dist, log_prior in zip(own, valid.log_priors)]
    width = max(valid.n_options)
    log_pred = torch.full((len(dists), width), float("-inf"))
    for row, dist in enumerate(dists):
        log_pred[row, : len(dist)] = torch.as_tensor(np.log(np.clip(dist, 1e-30, None)))
    loss = float(LOSSES[config.loss](padded_targets(valid.distributions, width), log_pred,
                                     valid.scale(range(len(dists)), width)))
    summary = summarize(metrics_table(items, dists)).iloc[0]
    record = {f"{name}_loss": loss, **{f"{name}_{m}": float(summary[m]) for m in METRIC_NAMES}}
    return record, own


def fit_on_validation(model: Any, valid_sets: dict[str, tuple[Batchable, Sequence[SurveyItem]]],
                      letter_ids: list[int], pad_id: int, batch_size: int,
                      prior: Prior | None, *, progress: bool = True,
                      scored: dict[str, list[np.ndarray]] | None = None) -> Calibration:
    """The calibration of ``model`` fit on every validation set (its own, prior-free
    distributions against the humans', grouped by seen and unseen questions).

    ``scored`` holds sets' distributions already computed with these weights (by
    :func:`validate`); the others are scored here.
    """
    model_dists, humans, priors, groups = [], [], [], []
    for name, (data, items) in valid_sets.items():
        if scored is not None and name in scored:
            model_dists += scored[name]
        else:
            model_dists += model_distributions(model, data, letter_ids, pad_id, batch_size,
                                               "calibrating", progress)
        humans += [i.distribution for i in items]
        priors += data.log_priors if data.log_priors is not None else [None] * len(items)
        groups += calibration_groups(items, prior)
    return fit_calibration(model_dists, None if prior is None else priors, humans, groups)
