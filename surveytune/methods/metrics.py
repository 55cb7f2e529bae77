"""Distribution metrics, their aggregation and the diversity measures (METHOD.md §3).

Every metric compares a human answer distribution ``p`` with a predicted one ``q`` over the
same ordered options. Names are exact and stable: they are the column names of every table
and result row the package writes.

Inputs are checked, never repaired: a vector with NaN or infinite values, a negative share, a
sum further than :data:`PREDICTION_TOLERANCE` from 1, fewer than 2 options or a shape unlike
its partner's raises :class:`ValueError` saying what is wrong (a vector of zeros would
otherwise score as a perfect match).

``emd`` is the earth mover's distance along the item's ordered answer scale. When an item marks
some options as off that scale (:attr:`SurveyItem.scale_positions`, e.g. WVS code 0 "Hard to
say" or "It is against democracy (spontaneous)", lettered first), ``emd`` keeps only the scale's
positions of both distributions, renormalises each to sum 1 and computes
``sum_k |CDF_p(k) - CDF_q(k)| / (m - 1)`` over those m options; the mass on the other options
does not count (the other metrics compare every option). A distribution with no mass on the
scale cannot be scored and raises. Items without ``scale_positions`` are scored on all
options exactly as before.

scipy and pandas are imported by the functions that use them: importing this module (or
``surveytune``) costs numpy only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from surveytune.data.items import SurveyItem

if TYPE_CHECKING:
    import pandas as pd

METRIC_NAMES = ("1-jsd", "js_divergence", "emd", "emd_paper", "tv", "acc")

METRIC_DESCRIPTIONS = {
    "1-jsd": "1 - Jensen-Shannon distance (natural log); the paper's headline metric, "
             "higher is better",
    "js_divergence": "Jensen-Shannon divergence in bits (base 2); lower is better",
    "emd": "order-aware earth mover's distance over the ordered scale's option positions, "
           "sum|CDF_p - CDF_q| / (m - 1) in [0, 1] (non-substantive options such as WVS "
           "'Hard to say' left out and both distributions renormalised over the m others); "
           "lower is better",
    "emd_paper": "the reference code's order-blind value, scipy wasserstein_distance(p, q) on "
                 "the probability vectors as samples; for comparison with the paper's tables "
                 "only, lower is better",
    "tv": "total variation distance, 0.5 * sum|p - q|; lower is better",
    "acc": "1 if the predicted mode equals the human mode (ties go to the first option), "
           "else 0; higher is better",
}

ID_COLUMNS = ("id", "split", "survey", "question_id", "population", "n_options")

PREDICTION_TOLERANCE = 1e-4
"""A distribution (human or predicted) whose sum is further than this from 1 is refused."""


def check_distribution(values: Sequence[float], what: str = "distribution",
                       n_options: int | None = None) -> np.ndarray:
    """``values`` as a float array if it is a probability vector a metric can score, else
    :class:`ValueError` naming ``what`` and the defect: not 1-D, fewer than 2 entries (or not
    ``n_options``), NaN/inf, negative, or a sum further than :data:`PREDICTION_TOLERANCE`
    from 1."""
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a vector of numbers: {values!r}") from None
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"{what} must be a vector of at least 2 probabilities, got shape "
                         f"{v.shape}")
    if n_options is not None and v.size != n_options:
        raise ValueError(f"{what} has {v.size} probabilities for {n_options} options")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} has NaN or infinite values: {v.tolist()}")
    if np.any(v < 0):
        raise ValueError(f"{what} has negative values: {v.tolist()}")
    if abs(v.sum() - 1.0) > PREDICTION_TOLERANCE:
        raise ValueError(f"{what} sums to {v.sum():.6g}, not 1 (tolerance "
                         f"{PREDICTION_TOLERANCE:g})")
    return v


def _scale_emd(p: np.ndarray, q: np.ndarray, scale: Sequence[int] | None) -> np.ndarray:
    """``emd`` of rows of ``p`` and ``q`` over the scale's positions (None: all, as is)."""
    if scale is not None:
        p, q = p[:, list(scale)], q[:, list(scale)]
        p_mass, q_mass = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
        if np.any(p_mass <= 0) or np.any(q_mass <= 0):
            raise ValueError(f"a distribution has no mass on the ordered scale's options "
                             f"{list(scale)}; emd is undefined")
        p, q = p / p_mass, q / q_mass
    k = p.shape[1]
    cdf_diff = np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1))[:, : k - 1]
    return cdf_diff.sum(axis=1) / (k - 1)


def one_minus_jsd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``1-jsd`` (1 - Jensen-Shannon distance, natural log) along the last axis of two arrays
    of distributions already known to be valid (no checks: for inner loops)."""
    from scipy.spatial.distance import jensenshannon

    # For (near-)identical rows scipy's JS divergence can round to a tiny negative number and
    # its square root to NaN; the inputs are distributions, so NaN means distance 0.
    with np.errstate(invalid="ignore"):
        return 1.0 - np.nan_to_num(jensenshannon(p, q, axis=-1), nan=0.0)


def _metric_arrays(p: np.ndarray, q: np.ndarray,
                   scale: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """All metrics for rows of ``p`` and ``q`` (shape ``(n, K)``, one K, validated), as
    arrays of n; ``scale`` restricts ``emd`` (see the module docstring)."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    # For (near-)identical rows scipy's JS divergence can round to a tiny negative number and
    # its square root to NaN; inputs are validated distributions, so NaN means distance 0.
    with np.errstate(invalid="ignore"):
        distance_e = np.nan_to_num(jensenshannon(p, q, axis=1), nan=0.0)
        distance_2 = np.nan_to_num(jensenshannon(p, q, base=2, axis=1), nan=0.0)
    return {
        "1-jsd": 1.0 - distance_e,
        "js_divergence": distance_2**2,
        "emd": _scale_emd(p, q, scale),
        "emd_paper": np.array([wasserstein_distance(a, b) for a, b in zip(p, q)]),
        "tv": 0.5 * np.abs(p - q).sum(axis=1),
        "acc": (p.argmax(axis=1) == q.argmax(axis=1)).astype(float),
    }


def item_metrics(human: Sequence[float], predicted: Sequence[float],
                 scale_positions: Sequence[int] | None = None) -> dict[str, float]:
    """All metrics of :data:`METRIC_NAMES` for one item's human and predicted distributions.

    ``scale_positions`` restricts ``emd`` to the ordered scale's options (module docstring).
    Raises :class:`ValueError` for input that is not two probability vectors of one length.
    """
    p = check_distribution(human, "human distribution")
    q = check_distribution(predicted, "predicted distribution", n_options=p.size)
    if scale_positions is not None and (
            len(scale_positions) < 2 or list(scale_positions) != sorted(set(scale_positions))
            or scale_positions[0] < 0 or scale_positions[-1] >= p.size):
        raise ValueError(f"scale_positions must be at least 2 increasing positions in "
                         f"0..{p.size - 1}, got {list(scale_positions)}")
    values = _metric_arrays(p[None, :], q[None, :], scale_positions)
    return {name: float(values[name][0]) for name in METRIC_NAMES}


def _check_prediction(item: SurveyItem, prediction: Sequence[float]) -> np.ndarray:
    return check_distribution(prediction, f"item {item.id!r}: prediction", item.n_options)


def metrics_table(items: Sequence[SurveyItem],
                  predictions: Sequence[Sequence[float]]) -> pd.DataFrame:
    """One row per item: its identifying columns and every metric of :data:`METRIC_NAMES`.

    ``predictions`` are probability vectors aligned with ``items``; a wrong length or a vector
    that is not a distribution raises :class:`ValueError` naming the item.
    """
    import pandas as pd

    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    checked = [_check_prediction(item, pred) for item, pred in zip(items, predictions)]
    for item, q in zip(items, checked):
        p = check_distribution(item.distribution, f"item {item.id!r}: human distribution",
                               item.n_options)
        if item.scale_positions is not None:
            scale = list(item.scale_positions)
            for what, v in (("human distribution", p), ("prediction", q)):
                if v[scale].sum() <= 0:
                    raise ValueError(f"item {item.id!r}: {what} has no mass on the ordered "
                                     f"scale's options {scale}; emd is undefined")
    groups: dict[tuple[int, tuple[int, ...] | None], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[(item.n_options, item.scale_positions)].append(i)
    columns = {name: np.full(len(items), np.nan) for name in METRIC_NAMES}
    for (_, scale), indices in groups.items():
        p = np.array([items[i].distribution for i in indices], dtype=float)
        q = np.array([checked[i] for i in indices])
        for name, values in _metric_arrays(p, q, scale).items():
            columns[name][indices] = values
    table = pd.DataFrame({
        "id": [i.id for i in items],
        "split": [i.split for i in items],
        "survey": [i.survey for i in items],
        "question_id": [i.question_id for i in items],
        "population": [i.population for i in items],
        "n_options": [i.n_options for i in items],
    })
    for name in METRIC_NAMES:
        table[name] = columns[name]
    return table


def summarize(table: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Item-weighted mean of each metric, with the item count ``n``, overall or per group.

    Raises :class:`ValueError` if any metric value is NaN (nothing is silently dropped).
    """
    import pandas as pd

    metrics = [m for m in METRIC_NAMES if m in table.columns]
    bad = table[metrics].isna().any(axis=1)
    if bad.any():
        ids = table.loc[bad, "id"].tolist() if "id" in table.columns else list(table.index[bad])
        raise ValueError(f"{int(bad.sum())} rows have NaN metrics, e.g. {ids[:5]}")
    if by is None:
        row = {"n": len(table), **{m: float(table[m].mean()) for m in metrics}}
        return pd.DataFrame([row])
    keys = [by] if isinstance(by, str) else list(by)
    grouped = table.groupby(keys, sort=True, dropna=False)
    out = grouped[metrics].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()


def result_rows(method: str, split: str, items: Sequence[SurveyItem],
                predictions: Sequence[Sequence[float]]) -> dict:
    """One result row ``{"method", "split", "n", <each metric mean>}`` (unrounded floats)."""
    if not items:
        raise ValueError(f"{method} on split {split!r}: no items to evaluate")
    summary = summarize(metrics_table(items, predictions)).iloc[0]
    row: dict = {"method": method, "split": split, "n": len(items)}
    row.update({m: float(summary[m]) for m in METRIC_NAMES})
    return row


def between_population_similarity(items: Sequence[SurveyItem],
                                  predictions: Sequence[Sequence[float]] | None = None) -> float:
    """Mean over questions of the mean pairwise 1-jsd between populations' distributions.

    Questions are grouped by (survey, question_id); those with fewer than two populations are
    skipped. Uses the human distributions when ``predictions`` is None, else the predicted
    ones. Raises :class:`ValueError` if no question has two populations.
    """
    if predictions is None:
        dists = [np.asarray(i.distribution, dtype=float) for i in items]
    else:
        if len(items) != len(predictions):
            raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
        dists = [_check_prediction(i, p) for i, p in zip(items, predictions)]
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[(item.survey, item.question_id)].append(index)
    per_question = []
    for key, indices in groups.items():
        if len(indices) < 2:
            continue
        if len({dists[i].size for i in indices}) != 1:
            raise ValueError(f"question {key} has items with different numbers of options")
        pairs = np.array(list(combinations(indices, 2)))
        stacked = np.array([dists[i] for i in indices])
        position = {index: row for row, index in enumerate(indices)}
        a = stacked[[position[i] for i in pairs[:, 0]]]
        b = stacked[[position[i] for i in pairs[:, 1]]]
        per_question.append(float(np.mean(one_minus_jsd(a, b))))
    if not per_question:
        raise ValueError("no question has two or more populations")
    return float(np.mean(per_question))


def mean_entropy(distributions: Iterable[Sequence[float]], normalised: bool = True) -> float:
    """Mean Shannon entropy (nats) of the distributions; divided by log K if ``normalised``."""
    from scipy.stats import entropy

    values = []
    for dist in distributions:
        d = check_distribution(dist)
        h = float(entropy(d))
        values.append(h / np.log(d.size) if normalised else h)
    if not values:
        raise ValueError("no distributions")
    return float(np.mean(values))


def diversity_report(items: Sequence[SurveyItem],
                     predictions: Sequence[Sequence[float]] | None = None) -> dict[str, float]:
    """Between-population similarity (1-jsd) and mean normalised entropy, humans vs model.

    Model keys are present only when ``predictions`` is given.
    """
    report = {
        "human_between_population_1-jsd": between_population_similarity(items),
        "human_mean_normalised_entropy": mean_entropy(i.distribution for i in items),
    }
    if predictions is not None:
        report["model_between_population_1-jsd"] = between_population_similarity(
            items, predictions)
        report["model_mean_normalised_entropy"] = mean_entropy(
            _check_prediction(i, p) for i, p in zip(items, predictions))
    return report


SUBPOP_WD = "wd_subpop"
SUBPOP_WD_DESCRIPTION = (
    "SubPOP-comparable Wasserstein distance: per ordinal item, the 1-D Wasserstein (earth "
    "mover's) distance between the human and the predicted distribution placed on the option "
    "positions 0..K-1, divided by K-1 (so in [0, 1]), averaged over the ordinal items only; "
    "lower is better. On an item it equals `emd` without `scale_positions`")


def subpop_wd(human: Sequence[float], predicted: Sequence[float],
              support: Sequence[float] | None = None) -> float:
    """The Wasserstein distance of SubPOP/OpinionQA style for one ordinal item.

    Both distributions sit on ``support`` (default: positions ``0..K-1``; SubPOP's own
    ``ordinal`` codes may be given instead) and the distance is divided by the support's range
    (``K - 1`` for positions), so it lies in [0, 1]. Raises :class:`ValueError` on input that
    is not two probability vectors of one length, or a support of another length or no range.
    """
    from scipy.stats import wasserstein_distance

    p = check_distribution(human, "human distribution")
    q = check_distribution(predicted, "predicted distribution", n_options=p.size)
    values = np.arange(p.size, dtype=float) if support is None else np.asarray(support, float)
    if values.shape != p.shape or not np.all(np.isfinite(values)) or np.ptp(values) == 0:
        raise ValueError(f"support must be {p.size} finite values with a range, got "
                         f"{list(values)}")
    return float(wasserstein_distance(values, values, p, q) / np.ptp(values))


def subpop_wd_mean(items: Sequence[SurveyItem],
                   predictions: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """(mean :func:`subpop_wd` over the ``ordinal`` items, their count); (None, 0) when none
    is ordinal. Non-ordinal items are left out, as SubPOP scores ordinal questions with WD."""
    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    values = [subpop_wd(item.distribution, pred) for item, pred in zip(items, predictions)
              if item.ordinal]
    return (float(np.mean(values)), len(values)) if values else (None, 0)
