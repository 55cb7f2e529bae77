"""The scoring interface every backend implements, and the registry of backends by name.

A backend turns prompt strings (already rendered, chat template included) and each item's
option count into one :class:`~surveytune.backends.scoring.Prediction` per prompt: the distribution
over the item's option letters (A, B, ...) at the next token, and the letters' next-token
mass. It knows nothing of items, populations or templates. Optional log priors (one vector
per prompt, :mod:`surveytune.methods.priors`) are added to the letter log-probabilities before the
renormalisation.

    hf      local transformers (CPU, CUDA, MPS): :mod:`surveytune.backends.hf`; trains too.
    openai  any OpenAI-compatible server (vLLM, llama.cpp, SGLang, TGI):
            :mod:`surveytune.backends.openai`; scoring only.

The registry maps a name to a loader ``load(model, **options) -> Backend``; the loaders are
imported lazily by :func:`load_backend` so that ``--backend openai`` never imports torch
models it does not need (and so that this low layer imports nothing above it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from surveytune.backends.models import ModelError
from surveytune.backends.scoring import Prediction

__all__ = ["BACKENDS", "Backend", "Prediction", "load_backend", "register_backend"]


@runtime_checkable
class Backend(Protocol):
    """What :class:`~surveytune.simulator.Simulator` needs from a scoring engine."""

    name: str            # the registry name ("hf", "openai")
    model_name: str      # the model as the user named it
    tokenizer: Any       # a local HF tokenizer: renders chat prompts, checks prompt lengths

    def score(self, prompts: Sequence[str], n_options: Sequence[int], *, chat: bool,
              log_priors: Sequence[Sequence[float]] | None = None, progress: bool = True,
              desc: str = "scoring") -> list[Prediction]:
        """One prediction per prompt, in input order. ``chat`` says the prompts were
        rendered by the chat template (they carry their own special tokens)."""
        ...

    def context_length(self) -> int | None:
        """The most prompt tokens the model takes, or None when unknown."""
        ...


# name -> "module:attribute" of a loader, or the loader itself (register_backend).
BACKENDS: dict[str, str | Callable[..., Backend]] = {
    "hf": "surveytune.backends.hf:load",
    "openai": "surveytune.backends.openai:load",
}


def register_backend(name: str, loader: Callable[..., Backend]) -> None:
    """Add a backend: ``loader(model, **options)`` returns an object with :class:`Backend`'s
    methods."""
    BACKENDS[name] = loader


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """The backend ``name`` for ``model``; options a backend does not know are refused."""
    if name not in BACKENDS:
        raise ModelError(f"--backend: unknown backend {name!r}; choose one of "
                         f"{', '.join(BACKENDS)}")
    loader = BACKENDS[name]
    if isinstance(loader, str):
        module, attribute = loader.split(":")
        loader = getattr(importlib.import_module(module), attribute)
    return loader(model, **options)


def apply_log_prior(log_probs: Any, log_prior: Sequence[float] | None) -> Any:
    """Letter log-probabilities plus a log prior, renormalised (numpy, one item)."""
    import numpy as np

    values = np.asarray(log_probs, dtype=np.float64)
    if log_prior is not None:
        values = values + np.asarray(log_prior, dtype=np.float64)
    values = values - values.max()
    probs = np.exp(values)
    return probs / probs.sum()
