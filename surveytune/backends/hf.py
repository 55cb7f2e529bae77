"""The ``hf`` backend: a local transformers model (CPU, CUDA or MPS), optionally with the
weights of a trained adapter, scored by :func:`~surveytune.backends.scoring.score_token_ids`.
The only backend that can also train (:meth:`surveytune.simulator.Simulator.fit`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from surveytune.backends.adapters import load_adapter
from surveytune.backends.base import BackendOptions
from surveytune.backends.devices import DEVICES, DTYPE_CHOICES, resolve_device, resolve_dtype
from surveytune.backends.models import LoadedModel
from surveytune.backends.precision import choose_scoring_dtype
from surveytune.backends.scoring import Prediction, encode, score_token_ids
from surveytune.methods import params

_FLAG = params.Options((False, True))


@dataclass(frozen=True)
class HFOptions(BackendOptions):
    """``device`` auto: the GPU if there is one; ``dtype`` auto: bfloat16 on a GPU, float32
    on the CPU; a 4- or 8-bit base on CUDA; ``adapter``: a folder written by training."""

    device: str = "auto"
    dtype: str = "auto"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    adapter: str | None = None
    batch_size: int = 8
    trust_remote_code: bool = False

    CONSTRAINTS = {"device": params.Options(DEVICES), "dtype": params.Options(DTYPE_CHOICES),
                   "load_in_8bit": _FLAG, "load_in_4bit": _FLAG,
                   "batch_size": params.Interval(1, integer=True), "trust_remote_code": _FLAG}

    def precision(self) -> dict[str, Any]:
        """The scoring dtype chosen for the device (``--dtype auto`` resolved) and the device."""
        device = resolve_device(self.device)
        return {**choose_scoring_dtype(self.dtype, device).to_dict(), "device": device}


Options = HFOptions  # the name the registry looks up (surveytune.backends.base)


def context_length(model: Any, tokenizer: Any | None = None) -> int | None:
    """The most tokens the model takes: its config's positions, or the tokenizer's limit if
    that is smaller; None when neither says."""
    config = getattr(model, "config", None)
    limits = [getattr(config, name, None) for name in
              ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 10**8]
    return min(limits) if limits else None


@dataclass
class HFBackend:
    """A loaded model, its tokenizer and letter ids; scores prompts in batches."""

    loaded: LoadedModel
    batch_size: int = 8
    name: str = "hf"

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def letter_ids(self) -> list[int]:
        return self.loaded.letter_ids

    @property
    def model_name(self) -> str:
        return self.loaded.name

    def score(self, prompts: Sequence[str], n_options: Sequence[int], *, chat: bool,
              log_priors: Sequence[Sequence[float]] | None = None, progress: bool = True,
              desc: str = "scoring") -> list[Prediction]:
        token_ids = encode(self.tokenizer, prompts, chat=chat)
        return score_token_ids(self.model, token_ids, n_options, self.letter_ids,
                               self.tokenizer.pad_token_id, batch_size=self.batch_size,
                               progress=progress, desc=desc, log_priors=log_priors)

    def generate(self, conversations: Sequence[Any], *, samples: int = 1,
                 temperature: float = 0.0, seed: int = 0, max_tokens: int = 16,
                 schemas: Sequence[dict | None] | None = None, chat: bool = True,
                 progress: bool = True, desc: str = "generating") -> list[list[Any]]:
        """Answers generated locally (:mod:`surveytune.backends.generation`); ``schemas``
        constrain nothing here (the answers are parsed strictly)."""
        from surveytune.backends.generation import generate_local

        del schemas
        return generate_local(self.model, self.tokenizer, conversations, chat=chat,
                              samples=samples, temperature=temperature, seed=seed,
                              max_tokens=max_tokens, progress=progress, desc=desc)

    def context_length(self) -> int | None:
        return context_length(self.model, self.tokenizer)

    def trainable(self) -> LoadedModel:
        """The loaded model itself: training wraps its model and puts it back."""
        return self.loaded


def load(model: str, options: HFOptions) -> HFBackend:
    """Load ``model`` (name or path) on the options' device in their dtype, with their
    adapter's weights."""
    device = resolve_device(options.device)
    settings: dict[str, Any] = {"dtype": resolve_dtype(options.dtype, device), "device": device,
                                "trust_remote_code": options.trust_remote_code,
                                "load_in_8bit": options.load_in_8bit,
                                "load_in_4bit": options.load_in_4bit}
    if options.adapter is not None:
        loaded, _ = load_adapter(model, options.adapter, **settings)
    else:
        loaded = LoadedModel.load(model, **settings)
    return HFBackend(loaded, batch_size=options.batch_size)
