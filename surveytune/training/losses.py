"""Training losses between human distributions and predicted letter log-probabilities.

All take ``human`` (batch, K) with zeros beyond each row's options and ``log_pred``
(batch, K) with ``-inf`` there, and return the mean over rows of a per-item loss (summed
over options, not divided by K: the reference code's ``batchmean`` on a 1-D tensor did that).
Each also takes ``scale``, an optional (batch, K) boolean mask of the options on each row's
ordered answer scale (:attr:`SurveyItem.scale_positions`); only ``emd_loss`` uses it, as the
``emd`` metric does: both distributions restricted to the scale and renormalised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def _xlogy(x: torch.Tensor, log_y: torch.Tensor) -> torch.Tensor:
    """x * log_y with 0 * anything = 0 (so padded options and zero shares contribute 0)."""
    return torch.where(x > 0, x * log_y, torch.zeros_like(x))


def kl_loss(human: torch.Tensor, log_pred: torch.Tensor,
            scale: torch.Tensor | None = None) -> torch.Tensor:
    """KL(human || model), the paper's loss."""
    log_human = torch.where(human > 0, human.clamp_min(1e-30).log(), torch.zeros_like(human))
    return (_xlogy(human, log_human) - _xlogy(human, log_pred)).sum(-1).mean()


def js_loss(human: torch.Tensor, log_pred: torch.Tensor,
            scale: torch.Tensor | None = None) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log)."""
    pred = log_pred.exp()
    log_mid = ((human + pred) / 2).clamp_min(1e-30).log()
    log_human = human.clamp_min(1e-30).log()
    kl_hm = (_xlogy(human, log_human) - _xlogy(human, log_mid)).sum(-1)
    kl_pm = (_xlogy(pred, log_pred) - _xlogy(pred, log_mid)).sum(-1)
    return (0.5 * (kl_hm + kl_pm)).mean()


def emd_loss(human: torch.Tensor, log_pred: torch.Tensor,
             scale: torch.Tensor | None = None) -> torch.Tensor:
    """Order-aware earth mover's distance, sum |CDF_h - CDF_p| / (m - 1), over each row's
    ordered scale of m options: all its K options, or the ``scale`` mask's (both
    distributions restricted to them and renormalised, as in the ``emd`` metric)."""
    pred = log_pred.exp()
    if scale is None:
        diff = (human.cumsum(-1) - pred.cumsum(-1)).abs()
        n_options = (log_pred > float("-inf")).sum(-1)
        # Beyond a row's K both CDFs are 1, so those columns add 0; the K-th column adds 0 too.
        return (diff.sum(-1) / (n_options - 1).clamp_min(1)).mean()
    scale = scale.to(human.device) & (log_pred > float("-inf"))
    zero = torch.zeros_like(human)
    human_s = torch.where(scale, human, zero)
    pred_s = torch.where(scale, pred, zero)
    human_s = human_s / human_s.sum(-1, keepdim=True).clamp_min(1e-30)
    pred_s = pred_s / pred_s.sum(-1, keepdim=True).clamp_min(1e-30)
    # Off-scale columns repeat the previous CDF value, so only scale columns are summed; the
    # last one adds 0 (both CDFs are 1 there).
    diff = torch.where(scale, (human_s.cumsum(-1) - pred_s.cumsum(-1)).abs(), zero)
    n_options = scale.sum(-1)
    return (diff.sum(-1) / (n_options - 1).clamp_min(1)).mean()


def ce_loss(human: torch.Tensor, log_pred: torch.Tensor,
            scale: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy to the majority option (the paper's weakest ablation)."""
    target = human.argmax(-1)
    return -log_pred.gather(-1, target[:, None]).squeeze(-1).mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "kl": kl_loss, "js": js_loss, "emd": emd_loss, "ce": ce_loss,
}


def padded_targets(distributions: list, width: int) -> torch.Tensor:
    """Human distributions as a (batch, width) tensor, zero-padded."""
    out = torch.zeros((len(distributions), width), dtype=torch.float32)
    for row, dist in enumerate(distributions):
        out[row, : len(dist)] = torch.as_tensor(dist, dtype=torch.float32)
    return out


def scale_mask(positions: Sequence[tuple[int, ...] | None], n_options: Sequence[int],
               width: int) -> torch.Tensor | None:
    """The (batch, width) ``scale`` mask of rows with these ``scale_positions`` (None: every
    option of the row), or None when no row is restricted."""
    if all(p is None for p in positions):
        return None
    mask = torch.zeros((len(positions), width), dtype=torch.bool)
    for row, (pos, k) in enumerate(zip(positions, n_options)):
        mask[row, list(range(k)) if pos is None else list(pos)] = True
    return mask
