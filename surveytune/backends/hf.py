"""The ``hf`` backend: a local transformers model (CPU, CUDA or MPS), optionally with the
weights of a trained adapter, scored by :func:`~surveytune.backends.scoring.score_token_ids`.
The only backend that can also train (:meth:`surveytune.simulator.Simulator.fit`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from surveytune.backends.adapters import load_adapter
from surveytune.backends.models import (
    DEFAULT_MODEL,
    LoadedModel,
    context_length,
    resolve_device,
    resolve_dtype,
)
from surveytune.backends.scoring import Prediction, encode, score_token_ids


@dataclass
class HFBackend:
    """A loaded model, its tokenizer and letter ids; scores prompts in batches."""

    loaded: LoadedModel
    batch_size: int = 8
    name: str = "hf"

    @property
    def model(self) -> Any:
        return self.loaded.model

    @model.setter
    def model(self, value: Any) -> None:  # training swaps in the wrapped model
        self.loaded.model = value

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

    def context_length(self) -> int | None:
        return context_length(self.model, self.tokenizer)


def load(model: str = DEFAULT_MODEL, *, adapter: str | os.PathLike | None = None,
         dtype: str = "auto", device: str = "auto", batch_size: int = 8,
         trust_remote_code: bool = False, load_in_8bit: bool = False,
         load_in_4bit: bool = False) -> HFBackend:
    """Load ``model`` (name or path) on ``device`` (auto: the GPU if there is one) in
    ``dtype`` (auto: bfloat16 on a GPU, float32 on the CPU), with ``adapter``'s weights."""
    device = resolve_device(device)
    options: dict[str, Any] = {"dtype": resolve_dtype(dtype, device), "device": device,
                               "trust_remote_code": trust_remote_code,
                               "load_in_8bit": load_in_8bit, "load_in_4bit": load_in_4bit}
    if adapter is not None:
        loaded, _ = load_adapter(model, adapter, **options)
    else:
        loaded = LoadedModel.load(model, **options)
    return HFBackend(loaded, batch_size=batch_size)
