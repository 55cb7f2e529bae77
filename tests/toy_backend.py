"""A backend from outside the package, written as a user would add one: its options (one
dataclass with its constraint table) and ``load``; tests register it with one line,
``monkeypatch.setitem(BACKENDS, "toy", "toy_backend")``.

It needs no model: option ``i`` of ``k`` gets the logit ``scale * log(i + 1)`` (so ``scale=0``
would be uniform and ``scale=2`` gives shares proportional to 1, 4, 9, ...), the log prior is
added before the renormalisation, and the letters' mass is ``mass``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surveytune.backends.base import BackendOptions, ScoringOnly, apply_log_prior
from surveytune.backends.scoring import Prediction
from surveytune.methods import params


@dataclass(frozen=True)
class ToyOptions(BackendOptions):
    scale: float = 1.0
    mass: float = 0.5
    batch_size: int = 8  # set by the simulator (--batch-size), recorded to be checked

    CONSTRAINTS = {"scale": params.Interval(0, closed="neither"),
                   "mass": params.Interval(0, 1, closed="right")}


Options = ToyOptions


def toy_distribution(k: int, scale: float, log_prior: Sequence[float] | None = None
                     ) -> np.ndarray:
    """What the toy backend predicts for an item with ``k`` options."""
    return apply_log_prior(scale * np.log(np.arange(1, k + 1)), log_prior)


@dataclass
class ToyBackend(ScoringOnly):
    model_name: str
    options: ToyOptions
    tokenizer: Any = None  # plain prompts only: no chat template
    name: str = "toy"
    prompts_seen: int = 0

    def score(self, prompts: Sequence[str], n_options: Sequence[int], *, chat: bool,
              log_priors: Sequence[Sequence[float]] | None = None, progress: bool = True,
              desc: str = "scoring") -> list[Prediction]:
        self.prompts_seen += len(prompts)
        priors = log_priors if log_priors is not None else [None] * len(prompts)
        return [Prediction(toy_distribution(k, self.options.scale, prior), self.options.mass)
                for k, prior in zip(n_options, priors)]

    def context_length(self) -> int | None:
        return None


def load(model: str, options: ToyOptions) -> ToyBackend:
    return ToyBackend(model, options)
