"""First-token scoring: one forward pass per prompt, last position, option-letter columns.

The prediction for an item with K options is the softmax over the logits of the tokens
``A`` .. ``K-th letter`` at the position right after the prompt. Prompts are batched by
length with left padding and explicit position ids, so padding does not change a single
logit, the LM head is applied to the last position only (``logits_to_keep=1``), and the start
that all prompts share (chat header, "How would someone from") is computed once.
"""

from __future__ import annotations

import copy
import inspect
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


def special_prefix(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before a text (e.g. ``[bos_token_id]``), found by
    encoding a probe with and without them; tokens it appends (an EOS) are not included."""
    probe = "a"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    raise ValueError(f"the tokenizer encodes {probe!r} as {plain} without special tokens and "
                     f"as {full} with them; cannot tell which tokens it adds")


def encode(tokenizer: Any, prompts: Sequence[str], *, chat: bool) -> list[list[int]]:
    """Token ids of each prompt, the one place that decides their special tokens.

    Chat prompts (rendered by ``apply_chat_template``) already carry theirs and get none
    added. Plain prompts start with the tokenizer's own leading special tokens (its BOS, when
    it adds one), unless the text already begins with them. Appended special tokens (an EOS)
    are never added: the prediction is the token right after the prompt.
    """
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if chat:
        return ids
    prefix = special_prefix(tokenizer)
    if not prefix:
        return ids
    return [row if row[:len(prefix)] == prefix else prefix + row for row in ids]


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


def last_position_logits(model: Any, batch: Sequence[Sequence[int]], pad_id: int,
                         prefix: SharedPrefix | None = None) -> torch.Tensor:
    """Next-token logits after each prompt, shape (batch, vocab), in float32.

    With ``prefix`` (a shared start of every prompt, already run through the model) only the
    rest of each prompt is computed; padding then sits between prefix and rest, masked out.
    """
    if prefix is None:
        inputs = left_pad(batch, pad_id, device=model.device)
        out = model(**inputs, logits_to_keep=1, use_cache=False)
        return out.logits[:, -1, :].float()
    size = len(prefix.token_ids)
    inputs = left_pad([ids[size:] for ids in batch], pad_id, device=model.device)
    mask = torch.cat([torch.ones((len(batch), size), dtype=torch.long, device=model.device),
                      inputs["attention_mask"]], dim=1)
    # A prefix built without gradients is reused for many batches, so each gets a copy; one
    # built with gradients (training) belongs to this batch, and copying would cut the graph.
    cache = copy.deepcopy(prefix.cache) if prefix.reusable else prefix.cache
    cache.batch_repeat_interleave(len(batch))
    out = model(input_ids=inputs["input_ids"], attention_mask=mask,
                position_ids=inputs["position_ids"] + size, use_cache=True, logits_to_keep=1,
                **{_cache_argument(model): cache})
    return out.logits[:, -1, :].float()


def _cache_argument(model: Any) -> str:
    """The forward argument that takes a KV cache: ``cache`` in recent transformers,
    ``past_key_values`` before (and in many remote-code models)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in names else "past_key_values"


@dataclass
class SharedPrefix:
    """The tokens every prompt starts with (chat header, "How would someone from") and their
    key/value cache, computed once instead of once per prompt.

    Built with gradients enabled (training), the cache is part of the autograd graph: the
    prefix then runs once per batch instead of once per row, gradients still flow through it,
    and it is used by one ``last_position_logits`` call only.
    """

    token_ids: list[int]
    cache: Any
    reusable: bool = True

    @classmethod
    def build(cls, model: Any, token_ids: Sequence[Sequence[int]],
              min_tokens: int = 4) -> SharedPrefix | None:
        """The longest common prefix of all prompts (leaving each at least one token of its
        own), or None when it is too short to be worth it."""
        shortest = min(len(ids) for ids in token_ids)
        size = 0
        first = token_ids[0]
        while size < shortest - 1 and all(ids[size] == first[size] for ids in token_ids):
            size += 1
        if size < min_tokens:
            return None
        input_ids = torch.tensor([list(first[:size])], device=model.device)
        out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        cache = getattr(out, "cache", None) or out.past_key_values
        return cls(list(first[:size]), cache, reusable=not torch.is_grad_enabled())


def letter_log_probs(logits: torch.Tensor, letter_ids: torch.Tensor, n_options: Sequence[int],
                     log_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax over each row's first ``n_options[row]`` letters, and the letters' mass.

    With ``log_prior`` (batch, max K), it is added to the letter logits before the softmax
    (prior-anchored prediction, :mod:`surveytune.priors`); the mass stays the model's own.
    Returns ``(log_probs, mass)``: log_probs is (batch, max K) with ``-inf`` beyond a row's K.
    """
    width = max(n_options)
    columns = logits[:, letter_ids[:width]]
    valid = (torch.arange(width, device=logits.device)[None, :]
             < torch.tensor(n_options, device=logits.device)[:, None])
    columns = columns.masked_fill(~valid, float("-inf"))
    mass = (columns.logsumexp(dim=-1) - logits.logsumexp(dim=-1)).exp()
    if log_prior is not None:
        columns = columns + log_prior.to(columns.device, columns.dtype)
    return columns.log_softmax(dim=-1), mass


def padded_log_priors(log_priors: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """Log priors of different lengths as a (batch, width) float32 tensor, zero-padded (the
    padded columns are masked to ``-inf`` by :func:`letter_log_probs` anyway)."""
    out = torch.zeros((len(log_priors), width), dtype=torch.float32)
    for row, values in enumerate(log_priors):
        out[row, : len(values)] = torch.as_tensor(np.array(values, dtype=np.float32))
    return out


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (memory errors show early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def score_token_ids(model: Any, token_ids: Sequence[Sequence[int]], n_options: Sequence[int],
                    letter_ids: Sequence[int], pad_id: int, *, batch_size: int = 8,
                    progress: bool = True, desc: str = "scoring",
                    share_prefix: bool = True,
                    log_priors: Sequence[Sequence[float]] | None = None) -> list[Prediction]:
    """Predictions for pre-tokenised prompts, in input order.

    ``share_prefix`` computes the tokens all prompts start with once (same numbers, less work).
    ``log_priors`` (one vector per prompt) anchors each prediction on a prior.
    """
    if len(token_ids) != len(n_options):
        raise ValueError("one option count per prompt is needed")
    if log_priors is not None and len(log_priors) != len(token_ids):
        raise ValueError("one log prior per prompt is needed")
    if not token_ids:
        return []
    letters = torch.tensor(letter_ids, device=model.device)
    results: list[Prediction | None] = [None] * len(token_ids)
    was_training = model.training
    model.eval()
    prefix = SharedPrefix.build(model, token_ids) if share_prefix else None
    with tqdm(total=len(token_ids), desc=desc, unit="item", disable=not progress,
              leave=False) as bar:
        for idx in length_batches([len(t) for t in token_ids], batch_size):
            logits = last_position_logits(model, [token_ids[i] for i in idx], pad_id, prefix)
            widths = [n_options[i] for i in idx]
            prior = None if log_priors is None else padded_log_priors(
                [log_priors[i] for i in idx], max(widths))
            log_probs, mass = letter_log_probs(logits, letters, widths, prior)
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
