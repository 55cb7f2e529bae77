"""The scoring interface every backend implements, its options, and the registry of backends.

A backend turns prompt strings (already rendered, chat template included) and each item's
option count into one :class:`~surveytune.backends.scoring.Prediction` per prompt: the
distribution over the item's option letters (A, B, ...) at the next token, and the letters'
next-token mass. It knows nothing of items, populations or templates. Optional log priors
(one vector per prompt, :mod:`surveytune.methods.priors`) are added to the letter
log-probabilities before the renormalisation.

    hf      local transformers (CPU, CUDA, MPS): :mod:`surveytune.backends.hf`; trains too.
    openai  any OpenAI-compatible server (vLLM, llama.cpp, SGLang, TGI):
            :mod:`surveytune.backends.openai`; scoring only.

A backend is one module, registered by one line in :data:`BACKENDS` (name -> module path).
The module defines ``Options``, a frozen dataclass derived from :class:`BackendOptions` (its
fields, defaults and ``CONSTRAINTS`` table), and ``load(model, options) -> Backend``.
Modules are imported only when their backend is chosen, so ``--backend openai`` never loads
a local model and this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from surveytune.backends.errors import ModelError
from surveytune.data.items import DataError
from surveytune.methods.params import Constraint, ParameterError, check_params

if TYPE_CHECKING:
    from surveytune.backends.scoring import Prediction

__all__ = ["BACKENDS", "Backend", "BackendOptions", "ScoringOnly", "Trainable", "load_backend",
           "options_class"]

# name -> the module that defines the backend's ``Options`` and ``load``.
BACKENDS: dict[str, str] = {
    "hf": "surveytune.backends.hf",
    "openai": "surveytune.backends.openai",
}

SIMULATOR_OPTIONS = ("adapter", "batch_size", "trust_remote_code")
"""Options that :meth:`surveytune.simulator.Simulator.load` sets from its own arguments
(``--adapter``, ``--batch-size``) wherever a backend's options have them; no caller gives
them as backend options."""


class Trainable(Protocol):
    """What training needs from a backend: the transformers model (training puts the wrapped
    model back here), its tokenizer and the option letters' token ids."""

    model: Any
    tokenizer: Any
    letter_ids: list[int]


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

    # Optional, for --elicit verbalized|sampling (surveytune.backends.elicitation):
    # ``generate(conversations, *, samples, temperature, seed, max_tokens, schemas,
    # progress, desc) -> list[list[Generated]]``, ``samples`` answers per conversation
    # (answer j with seed ``seed + j``), each constrained to its JSON schema where the
    # engine can. A backend that scores from conversations rather than the rendered
    # prompts sets ``uses_conversations = True`` and takes ``score(..., conversations=)``.

    def trainable(self) -> Trainable:
        """The handle training works on; a backend that only scores raises
        :class:`ModelError` (:class:`ScoringOnly`)."""
        ...


@dataclass(frozen=True)
class Generated:
    """One generated answer: its text (None when the server gave none), the refusal a
    server reported instead (OpenAI's ``message.refusal``), and how it was asked for
    (``completions``, ``chat-prefill``, ``chat-instruction``, ``chat``, ``hf``)."""

    text: str | None
    refusal: str | None = None
    elicitation: str = ""


class ScoringOnly:
    """The ``trainable`` of a backend that only scores: refused with one line."""

    name: str

    def trainable(self) -> Trainable:
        raise ModelError(f"the {self.name!r} backend only scores: training and the "
                         "transformers model need the hf backend")


@dataclass(frozen=True)
class BackendOptions:
    """The base of every backend's options: a frozen dataclass whose values are checked
    against its ``CONSTRAINTS`` table (:func:`surveytune.methods.params.check_params`)."""

    CONSTRAINTS: ClassVar[Mapping[str, Constraint]] = {}

    def __post_init__(self) -> None:
        check_params({f.name: getattr(self, f.name) for f in fields(self)}, self.CONSTRAINTS,
                     where=type(self).__name__)

    @classmethod
    def names(cls) -> list[str]:
        """The options a caller may give (those the simulator sets itself left out)."""
        return [f.name for f in fields(cls) if f.name not in SIMULATOR_OPTIONS]

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **simulator: Any) -> BackendOptions:
        """The options from keyword values; an unknown name is refused naming it and the
        known ones. ``simulator``: the simulator's own settings, kept where this backend
        has them."""
        known = cls.names()
        for name in values:
            if name not in known:
                raise ParameterError(f"unknown option; known: {', '.join(known)}",
                                     parameter=name, where=cls.__name__)
        own = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in simulator.items() if k in own}, **values)

    @classmethod
    def parse(cls, text: str) -> dict[str, Any]:
        """``key=value,key2=value2`` (lm-evaluation-harness's ``model_args``), each value typed
        by its field (bool: true/false, int, float, str); bad pairs are refused in one line
        naming ``--backend-args``. Values are not checked against the constraints here."""
        hints = typing.get_type_hints(cls)
        known = cls.names()
        values: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = (part.strip() for part in pair.partition("="))
            if not sep or not key:
                raise DataError(f"{pair!r} is not key=value", file="--backend-args")
            if key not in known:
                raise DataError(f"unknown key {key!r}; this backend knows {', '.join(known)}",
                                file="--backend-args")
            if key in values:
                raise DataError(f"{key} is given twice", file="--backend-args")
            values[key] = _typed(key, raw, hints[key])
        return values

    def precision(self) -> dict[str, Any]:
        """What a run records about the arithmetic this backend scores in (none: it is not
        decided here)."""
        return {}


def _typed(key: str, raw: str, hint: Any) -> Any:
    """``raw`` as the field's type (``X | None`` is typed as ``X``)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if raw.lower() not in words:
            raise DataError(f"{key} must be true or false, got {raw!r}", file="--backend-args")
        return words[raw.lower()]
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            kind = "a whole number" if hint is int else "a number"
            raise DataError(f"{key} must be {kind}, got {raw!r}",
                            file="--backend-args") from None
    if hint is str:
        return raw
    raise TypeError(f"--backend-args cannot type {key} ({hint}); options are bool, int, "
                    "float or str")


def _module(name: str) -> types.ModuleType:
    if name not in BACKENDS:
        raise ModelError(f"--backend: unknown backend {name!r}; choose one of "
                         f"{', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def options_class(name: str) -> type[BackendOptions]:
    """The options dataclass of the backend ``name``."""
    return _module(name).Options


def load_backend(name: str, model: str, options: BackendOptions) -> Backend:
    """The backend ``name`` for ``model`` with ``options`` (of its :func:`options_class`)."""
    return _module(name).load(model, options)


def apply_log_prior(log_probs: Any, log_prior: Sequence[float] | None) -> Any:
    """Letter log-probabilities plus a log prior, renormalised (numpy, one item)."""
    import numpy as np

    values = np.asarray(log_probs, dtype=np.float64)
    if log_prior is not None:
        values = values + np.asarray(log_prior, dtype=np.float64)
    values = values - values.max()
    probs = np.exp(values)
    return probs / probs.sum()
