"""First-token scoring: one forward pass per prompt, last position, option-letter columns.

The prediction for an item with K options is the softmax over the logits of the tokens
``A`` .. ``K-th letter`` at the position right after the prompt. Prompts are batched with
left padding and explicit position ids, so padding does not change a single logit, and the
LM head is applied to the last positions only (``logits_to_keep``). The starts that prompts
share are computed once (:func:`plan_prefixes`, :func:`packed_logits`): the chat header and
"How would someone from" under the paper's template; under the question-first template
(population last) the whole question with its options, for every population of it. A start
and the rests of its prompts run as one packed sequence whose attention mask lets each rest
see the start's keys and values and its own, so they are computed once and not copied.
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

from surveytune.backends.errors import ModelError
from surveytune.data.items import LETTERS


@dataclass(frozen=True)
class Prediction:
    """A predicted answer distribution and the next-token mass the letters got before
    renormalising (low mass means the model wanted to say something else)."""

    distribution: np.ndarray
    letter_mass: float
    # The model's own distribution before a calibration combined it with a prior (None when
    # none did): what re-anchoring on another prior starts from (surveytune.methods.observed).
    model: np.ndarray | None = None
    # How it was elicited when not the plain first-token logprobs (e.g. "chat-prefill",
    # "chat-instruction", "verbalized", "sampling-completions"); None: the default.
    elicitation: str | None = None
    # Why no distribution could be read (the answer was unparsable or refused); the
    # distribution is then NaN and the item is left out of the scores (surveytune.methods.elicit).
    failure: str | None = None
    mc_se: float | None = None  # the Monte-Carlo standard error of a sampled distribution


def letter_token_ids(tokenizer: Any, n_letters: int = len(LETTERS),
                     context: str = "my answer would be (") -> list[int]:
    """Token ids of ``A``, ``B``, ... as they appear right after ``(``.

    Each letter must add exactly one token to ``context`` and leave the context's tokens
    unchanged; otherwise first-token scoring is ill-defined for this tokenizer and we refuse.
    """
    base = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = []
    for letter in LETTERS[:n_letters]:
        extended = tokenizer(context + letter, add_special_tokens=False)["input_ids"]
        if len(extended) != len(base) + 1 or extended[: len(base)] != base:
            raise ModelError(
                f"option letter {letter!r} is not a single token after '(' for this tokenizer "
                f"({base} -> {extended}); first-token scoring cannot be used with it")
        ids.append(extended[-1])
    if len(set(ids)) != len(ids):
        raise ModelError(f"option letters share token ids: {ids}")
    return ids


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
        first = token_ids[0]
        size = min([len(ids) - 1 for ids in token_ids]
                   + [common_prefix_length(first, ids) for ids in token_ids[1:]])
        if size < min_tokens:
            return None
        input_ids = torch.tensor([list(first[:size])], device=model.device)
        out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        cache = getattr(out, "cache", None) or out.past_key_values
        return cls(list(first[:size]), cache, reusable=not torch.is_grad_enabled())


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    size = 0
    for x, y in zip(a, b):
        if x != y:
            break
        size += 1
    return size


def plan_prefixes(token_ids: Sequence[Sequence[int]], min_tokens: int = 4,
                  min_gain: int = 8) -> list[int]:
    """How many of each prompt's first tokens to take from a shared key/value cache (0: none).

    The prompts are sorted; neighbours that share at least ``min_gain`` tokens more than all
    prompts do form a group with their common start (under the question-first template: one
    question's populations share the question and its options), and the other prompts share
    the start common to all (the chat header, "How would someone from"). Each prompt keeps at
    least one token of its own, and a shared start shorter than ``min_tokens`` is not used.
    """
    if not token_ids:
        return []
    order = sorted(range(len(token_ids)), key=lambda i: list(token_ids[i]))
    neighbours = [common_prefix_length(token_ids[a], token_ids[b])
                  for a, b in zip(order, order[1:])]
    common = min([*neighbours, *(len(t) - 1 for t in token_ids)])
    sizes = [common if common >= min_tokens else 0] * len(token_ids)
    group, shared = [order[0]], len(token_ids[order[0]]) - 1
    for position, row in enumerate(order[1:]):
        size = min(shared, neighbours[position], len(token_ids[row]) - 1)
        # Join while the group keeps at least half of what it shares beyond the common start.
        if size >= common + min_gain and size - common >= (shared - common) / 2:
            group.append(row)
            shared = size
            continue
        _close(group, shared, sizes)
        group, shared = [row], len(token_ids[row]) - 1
    _close(group, shared, sizes)
    return sizes


def _close(group: list[int], shared: int, sizes: list[int]) -> None:
    if len(group) > 1:
        for row in group:
            sizes[row] = shared


PACKED_TOKENS = 512
"""The most tokens of one packed sequence: a start and the rests of the prompts that share
it (attention over a packed sequence grows with its length squared)."""

MASKED_ATTENTION = ("sdpa", "eager")
"""Attention implementations that take a custom 4-D mask (packing needs one); with others
every prompt runs in full."""


def _packed_sequences(token_ids: Sequence[Sequence[int]], sizes: Sequence[int],
                      max_tokens: int) -> list[tuple[int, list[int]]]:
    """Rows packed after their shared start: ``(start length, rows)`` per sequence, at most
    ``max_tokens`` long (a start that leaves no room still gets one row)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, (ids, size) in enumerate(zip(token_ids, sizes)):
        groups.setdefault(tuple(ids[:size]), []).append(row)
    sequences = []
    for start, rows in groups.items():
        current: list[int] = []
        length = len(start)
        for row in rows:
            rest = len(token_ids[row]) - len(start)
            if current and length + rest > max_tokens:
                sequences.append((len(start), current))
                current, length = [], len(start)
            current.append(row)
            length += rest
        sequences.append((len(start), current))
    return sequences


def packed_logits(model: Any, token_ids: Sequence[Sequence[int]], pad_id: int,
                  sizes: Sequence[int], max_tokens: int = PACKED_TOKENS) -> torch.Tensor:
    """Last-position logits of every prompt, each shared start computed once: a sequence
    holds a start followed by the rests of the prompts that share it, and a 4-D attention
    mask lets each rest see the start and itself only (causally), with its own positions.
    The same numbers as running every prompt alone (to float tolerance), in one forward
    pass; with gradients it trains as well (a start's gradient sums over its rests)."""
    sequences = _packed_sequences(token_ids, sizes, max_tokens)
    lengths = [start + sum(len(token_ids[r]) - start for r in rows) for start, rows in sequences]
    width = max(lengths)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(sequences), width), dtype=torch.long)
    segment = torch.full((len(sequences), width), -1, dtype=torch.long)  # -1 pad, 0 start
    last = torch.zeros(len(token_ids), dtype=torch.long)
    where = torch.zeros(len(token_ids), dtype=torch.long)
    for number, (start, rows) in enumerate(sequences):
        first = token_ids[rows[0]]
        input_ids[number, :start] = torch.tensor(list(first[:start]), dtype=torch.long)
        positions[number, :start] = torch.arange(start)
        segment[number, :start] = 0
        at = start
        for part, row in enumerate(rows, start=1):
            rest = list(token_ids[row][start:])
            input_ids[number, at:at + len(rest)] = torch.tensor(rest, dtype=torch.long)
            positions[number, at:at + len(rest)] = torch.arange(start, start + len(rest))
            segment[number, at:at + len(rest)] = part
            at += len(rest)
            last[row], where[row] = at - 1, number
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = causal & (key >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool) & (query < 0)  # pads see themselves only
    mask = allowed[:, None].to(model.device)
    if _attention(model) == "eager":
        mask = torch.zeros(mask.shape, dtype=model.dtype, device=model.device).masked_fill(
            ~mask, torch.finfo(model.dtype).min)
    keep, column = torch.unique(last, return_inverse=True)
    out = model(input_ids=input_ids.to(model.device), attention_mask=mask,
                position_ids=positions.to(model.device), use_cache=False,
                logits_to_keep=keep.to(model.device))
    return out.logits[where.to(model.device), column.to(model.device)].float()


def _attention(model: Any) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None)


def logits_with_shared_starts(model: Any, token_ids: Sequence[Sequence[int]], pad_id: int,
                              sizes: Sequence[int] | None) -> torch.Tensor:
    """Last-position logits of ``token_ids`` (one batch), the starts of ``sizes`` computed
    once (see :func:`plan_prefixes`; None, or a model whose attention takes no custom mask:
    every row in full)."""
    if sizes is None or not any(sizes):
        return last_position_logits(model, token_ids, pad_id)
    if len(set(sizes)) == 1 or _attention(model) not in MASKED_ATTENTION:
        # One start for all (the paper's template): its cache, repeated for every row.
        return last_position_logits(model, token_ids, pad_id,
                                    SharedPrefix.build(model, token_ids, min_tokens=1))
    return packed_logits(model, token_ids, pad_id, sizes)


def letter_log_probs(logits: torch.Tensor, letter_ids: torch.Tensor, n_options: Sequence[int],
                     log_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax over each row's first ``n_options[row]`` letters, and the letters' mass.

    With ``log_prior`` (batch, max K), it is added to the letter logits before the softmax
    (prior-anchored prediction, :mod:`surveytune.methods.priors`); the mass stays the model's own.
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


def shared_batches(token_ids: Sequence[Sequence[int]], sizes: Sequence[int], batch_size: int,
                   max_rows_factor: int = 8) -> list[list[int]]:
    """Batches of prompts that share starts (``sizes``, :func:`plan_prefixes`): rows of one
    start together, longest rest first, as many per batch as fit in the tokens of
    ``batch_size`` unshared prompts (at most ``max_rows_factor`` times as many rows)."""
    budget = batch_size * max(len(t) for t in token_ids)
    start_of = [tuple(ids[:size]) for ids, size in zip(token_ids, sizes)]
    first_seen: dict[tuple[int, ...], int] = {}
    for row in sorted(range(len(token_ids)), key=lambda i: list(token_ids[i])):
        first_seen.setdefault(start_of[row], len(first_seen))
    order = sorted(range(len(token_ids)),
                   key=lambda i: (first_seen[start_of[i]], -(len(token_ids[i]) - sizes[i])))
    batches: list[list[int]] = []
    batch: list[int] = []
    starts: set[tuple[int, ...]] = set()
    longest_rest = 0
    for row in order:
        rest = len(token_ids[row]) - sizes[row]
        new_starts = starts | {start_of[row]}
        cost = (sum(len(s) for s in new_starts) + (len(batch) + 1) * max(longest_rest, rest))
        if batch and (cost > budget or len(batch) >= max_rows_factor * batch_size):
            batches.append(batch)
            batch, new_starts, longest_rest = [], {start_of[row]}, 0
        batch.append(row)
        starts = new_starts
        longest_rest = max(longest_rest, rest)
    if batch:
        batches.append(batch)
    return batches


@torch.no_grad()
def score_token_ids(model: Any, token_ids: Sequence[Sequence[int]], n_options: Sequence[int],
                    letter_ids: Sequence[int], pad_id: int, *, batch_size: int = 8,
                    progress: bool = True, desc: str = "scoring",
                    share_prefix: bool = True,
                    log_priors: Sequence[Sequence[float]] | None = None) -> list[Prediction]:
    """Predictions for pre-tokenised prompts, in input order.

    ``share_prefix`` computes the starts that prompts share once (:func:`plan_prefixes`:
    the chat header for every prompt; under the question-first template a question and its
    options for all its populations) and batches the prompts of one start together; the
    numbers are the same as without (to float tolerance), the work much less.
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
    sizes = plan_prefixes(token_ids) if share_prefix else [0] * len(token_ids)
    # One start common to all prompts (the paper's template): run once, reused by every batch.
    common = (SharedPrefix.build(model, token_ids, min_tokens=1)
              if len(set(sizes)) == 1 and sizes[0] else None)
    batches = (shared_batches(token_ids, sizes, batch_size) if any(sizes) and common is None
               else length_batches([len(t) for t in token_ids], batch_size))
    with tqdm(total=len(token_ids), desc=desc, unit="item", disable=not progress,
              leave=False) as bar:
        for idx in batches:
            batch = [token_ids[i] for i in idx]
            logits = (last_position_logits(model, batch, pad_id, common) if common is not None
                      else logits_with_shared_starts(model, batch, pad_id,
                                                     [sizes[i] for i in idx]))
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
