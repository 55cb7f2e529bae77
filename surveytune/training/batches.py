"""The training data as batches: pre-tokenised items with their targets and priors
(:class:`Batchable`), and which items each optimizer step trains on, a pure function of the
data's lengths, the seed and the step, so that a resumed (or multi-process) run sees the same
batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from surveytune.training.losses import scale_mask

__all__ = ["Batchable", "epoch_order", "step_items"]


@dataclass
class Batchable:
    """Pre-tokenised prompts with their targets."""

    token_ids: list[list[int]]
    distributions: list[tuple[float, ...]]
    # Each item's SurveyItem.scale_positions (the emd loss's ordered scale); None: all options.
    scale_positions: list[tuple[int, ...] | None] | None = None
    log_priors: list[np.ndarray] | None = None  # one per item when a prior anchors them
    groups: list[str] | None = None  # each item's question (batches grouped by question)

    def scale(self, idx: Sequence[int], width: int) -> torch.Tensor | None:
        """The emd loss's ``scale`` mask for items ``idx`` (None when none is restricted)."""
        if self.scale_positions is None:
            return None
        return scale_mask([self.scale_positions[i] for i in idx],
                          [self.n_options[i] for i in idx], width)

    @property
    def n_options(self) -> list[int]:
        return [len(d) for d in self.distributions]


def epoch_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                groups: Sequence[str] | None = None, questions_per_batch: int = 0
                ) -> list[int]:
    """The item order of one epoch, a pure function of (lengths, seed, epoch) so that a
    resumed run sees the same batches. Items are shuffled, grouped into windows of 64
    batches, sorted by length inside a window (less padding), and the batches shuffled.

    With ``questions_per_batch`` (and each item's question in ``groups``) the shuffled items
    of each question are cut into runs of ``batch_size / questions_per_batch`` and the runs
    shuffled, so that a batch holds the populations of about that many questions (whose
    question part the question-first template computes once)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if questions_per_batch and groups is not None:
        run = max(1, -(-batch_size // questions_per_batch))
        members: dict[str, list[int]] = {}
        for index in order:
            members.setdefault(groups[index], []).append(index)
        # Full runs of one question; the remainders pooled (question by question) into runs
        # of the same size, so that every batch starts at a run's start.
        runs = [rows[i:i + run] for rows in members.values()
                for i in range(0, len(rows) - len(rows) % run, run)]
        rest = [i for rows in members.values() for i in rows[len(rows) - len(rows) % run:]]
        runs += [rest[i:i + run] for i in range(0, len(rest) - len(rest) % run, run)]
        shuffled = torch.randperm(len(runs), generator=generator).tolist()
        return [i for r in shuffled for i in runs[r]] + rest[len(rest) - len(rest) % run:]
    window = batch_size * 64
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [i for b in shuffled for i in batches[b]]


def step_items(step: int, lengths: Sequence[int], batch_size: int, per_step: int, seed: int,
               _cache: dict[tuple, list[int]] | None = None,
               groups: Sequence[str] | None = None, questions_per_batch: int = 0) -> list[int]:
    """Indices of the items that optimizer step ``step`` trains on (epochs wrap around)."""
    cache = {} if _cache is None else _cache
    out = []
    for pos in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(pos, len(lengths))
        key = (seed, epoch)
        if key not in cache:
            cache.clear()
            cache[key] = epoch_order(lengths, batch_size, seed, epoch, groups,
                                     questions_per_batch)
        out.append(cache[key][offset])
    return out
