"""Reference predictors every model result must be stated next to (METHOD.md §5 and §7).

Each baseline returns a list of probability vectors (numpy arrays) aligned with the items
it is asked to predict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .items import SurveyItem
from .metrics import result_rows

BASELINE_NAMES = ("uniform", "country-mean", "country-mean-loo", "ceiling")


def _question_key(item: SurveyItem) -> tuple[str, str]:
    return (item.survey, item.question_id)


def _uniform(k: int) -> np.ndarray:
    return np.full(k, 1.0 / k)


def _dist(item: SurveyItem) -> np.ndarray:
    return np.asarray(item.distribution, dtype=float)


def uniform(items: Sequence[SurveyItem]) -> list[np.ndarray]:
    """The uniform distribution over each item's options."""
    return [_uniform(item.n_options) for item in items]


def country_mean(train_items: Sequence[SurveyItem],
                 items: Sequence[SurveyItem]) -> list[np.ndarray]:
    """Per question (survey, question_id), the mean distribution over the training populations.

    Fallback for a question absent from ``train_items``: the position-wise mean distribution of
    all training items with the same number of options; if no training item has that many
    options, uniform. Raises :class:`ValueError` if a training question's option count differs
    from the evaluated item's.
    """
    by_question: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    by_k: dict[int, list[np.ndarray]] = defaultdict(list)
    for item in train_items:
        by_question[_question_key(item)].append(_dist(item))
        by_k[item.n_options].append(_dist(item))
    question_mean: dict[tuple[str, str], np.ndarray] = {}
    for key, dists in by_question.items():
        if len({d.size for d in dists}) != 1:
            raise ValueError(f"training question {key} has items with different option counts")
        question_mean[key] = np.mean(dists, axis=0)
    k_mean = {k: np.mean(dists, axis=0) for k, dists in by_k.items()}
    predictions = []
    for item in items:
        mean = question_mean.get(_question_key(item))
        if mean is None:
            mean = k_mean.get(item.n_options, _uniform(item.n_options))
        elif mean.size != item.n_options:
            raise ValueError(f"item {item.id!r} has {item.n_options} options but its question "
                             f"has {mean.size} in the training data")
        predictions.append(mean / mean.sum())
    return predictions


def country_mean_loo(items: Sequence[SurveyItem]) -> list[np.ndarray]:
    """Per item, the mean distribution of the OTHER populations of its question in ``items``.

    Uniform when no other population of the question is present.
    """
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[_question_key(item)].append(index)
    predictions = []
    for item in items:
        others = [_dist(items[j]) for j in groups[_question_key(item)]
                  if items[j].population != item.population]
        if not others:
            predictions.append(_uniform(item.n_options))
            continue
        if any(d.size != item.n_options for d in others):
            raise ValueError(f"question {_question_key(item)} has items with different "
                             "option counts")
        mean = np.mean(others, axis=0)
        predictions.append(mean / mean.sum())
    return predictions


def ceiling(items: Sequence[SurveyItem], n: int = 1200, seed: int = 0) -> list[np.ndarray]:
    """Each human distribution resampled as a multinomial of ``n`` respondents (seeded).

    Estimates the best score reachable given survey sampling noise.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    predictions = []
    for item in items:
        p = _dist(item)
        counts = rng.multinomial(n, p / p.sum())
        predictions.append(counts / n)
    return predictions


def baseline_predictors(train_items: Sequence[SurveyItem], ceiling_n: int = 1200,
                        seed: int = 0) -> dict[str, Callable[[Sequence[SurveyItem]], list]]:
    """Each baseline as a function of the items of one split, by name."""
    return {
        "uniform": uniform,
        "country-mean": lambda items: country_mean(train_items, items),
        "country-mean-loo": country_mean_loo,
        "ceiling": lambda items: ceiling(items, n=ceiling_n, seed=seed),
    }


def evaluate_baselines(splits: Mapping[str, Sequence[SurveyItem]], train_split: str = "train",
                       ceiling_n: int = 1200, seed: int = 0,
                       keep: Mapping[str, Sequence[int]] | None = None) -> list[dict]:
    """One result row (see :func:`surveytune.metrics.result_rows`) per baseline and split.

    ``country-mean`` is fitted on ``splits[train_split]``; a missing train split raises.
    ``keep`` optionally restricts scoring to some items of a split (a subsample evaluated
    by a model too); the baselines still see the whole split, so ``country-mean-loo``
    averages over all other populations, not only the sampled ones.
    """
    if train_split not in splits:
        raise ValueError(f"country-mean needs the training split {train_split!r}, but the "
                         f"splits given are {sorted(splits)}")
    predictors = baseline_predictors(splits[train_split], ceiling_n, seed)
    rows = []
    for name in BASELINE_NAMES:
        for split, items in splits.items():
            predictions = predictors[name](items)
            index = range(len(items)) if keep is None or split not in keep else keep[split]
            rows.append(result_rows(name, split, [items[i] for i in index],
                                    [predictions[i] for i in index]))
    return rows
