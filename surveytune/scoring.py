"""First-token scoring: one forward pass per prompt, last position, option-letter columns.

The prediction for an item with K options is the softmax over the logits of the tokens
``A`` .. ``K-th letter`` at the position right after the prompt. Prompts are batched by
length with left padding and explicit position ids, so padding does not change a single
logit, and the LM head is applied to the last position only (``logits_to_keep=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Prediction:
    """A predicted answer distribution and the next-token mass the letters got before
    renormalising (low mass means the model wanted to say something else)."""

    distribution: np.ndarray
    letter_mass: float


def encode(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt. Chat prompts already carry their special tokens."""
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def left_pad(batch: Sequence[Sequence[int]], pad_id: int,
             device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids``, ``attention_mask`` and the matching ``position_ids``."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
            "position_ids": positions.to(device)}


def last_position_logits(model: Any, batch: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Next-token logits after each prompt, shape (batch, vocab), in float32."""
    inputs = left_pad(batch, pad_id, device=model.device)
    out = model(**inputs, logits_to_keep=1, use_cache=False)
    return out.logits[:, -1, :].float()


def letter_log_probs(logits: torch.Tensor, letter_ids: torch.Tensor,
                     n_options: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax over each row's first ``n_options[row]`` letters, and the letters' mass.

    Returns ``(log_probs, mass)``: log_probs is (batch, max K) with ``-inf`` beyond a row's K.
    """
    width = max(n_options)
    columns = logits[:, letter_ids[:width]]
    valid = (torch.arange(width, device=logits.device)[None, :]
             < torch.tensor(n_options, device=logits.device)[:, None])
    columns = columns.masked_fill(~valid, float("-inf"))
    log_probs = columns.log_softmax(dim=-1)
    mass = (columns.logsumexp(dim=-1) - logits.logsumexp(dim=-1)).exp()
    return log_probs, mass


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (memory errors show early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def score_token_ids(model: Any, token_ids: Sequence[Sequence[int]], n_options: Sequence[int],
                    letter_ids: Sequence[int], pad_id: int, *, batch_size: int = 8,
                    progress: bool = True, desc: str = "scoring") -> list[Prediction]:
    """Predictions for pre-tokenised prompts, in input order."""
    if len(token_ids) != len(n_options):
        raise ValueError("one option count per prompt is needed")
    letters = torch.tensor(letter_ids, device=model.device)
    results: list[Prediction | None] = [None] * len(token_ids)
    was_training = model.training
    model.eval()
    with tqdm(total=len(token_ids), desc=desc, unit="item", disable=not progress,
              leave=False) as bar:
        for idx in length_batches([len(t) for t in token_ids], batch_size):
            logits = last_position_logits(model, [token_ids[i] for i in idx], pad_id)
            log_probs, mass = letter_log_probs(logits, letters, [n_options[i] for i in idx])
            probs = log_probs.exp().cpu().numpy().astype(np.float64)
            for row, i in enumerate(idx):
                dist = probs[row, :n_options[i]]
                results[i] = Prediction(dist / dist.sum(), float(mass[row]))
            bar.update(len(idx))
    model.train(was_training)
    return results  # type: ignore[return-value]


@torch.no_grad()
def reference_score_token_ids(model: Any, token_ids: Sequence[Sequence[int]],
                              n_options: Sequence[int], letter_ids: Sequence[int], pad_id: int,
                              *, batch_size: int = 8, pad_to: int = 256) -> list[Prediction]:
    """The paper code's way, kept as a slow reference for tests and benchmarks: right-pad
    every prompt to ``pad_to`` tokens, compute full-vocabulary logits at every position,
    then pick each row's last real position."""
    results = []
    for start in range(0, len(token_ids), batch_size):
        chunk = token_ids[start:start + batch_size]
        width = max(pad_to, max(len(t) for t in chunk))
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(chunk):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            mask[row, :len(ids)] = 1
        logits = model(input_ids=input_ids.to(model.device),
                       attention_mask=mask.to(model.device)).logits.float()
        last = logits[torch.arange(len(chunk)), mask.sum(dim=1).to(model.device) - 1]
        for row in range(len(chunk)):
            k = n_options[start + row]
            full = last[row].log_softmax(-1)
            letters = full[list(letter_ids[:k])]
            results.append(Prediction((letters.softmax(-1)).double().cpu().numpy(),
                                      float(letters.exp().sum())))
    return results
