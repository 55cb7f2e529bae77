"""Reference predictors every model result must be stated next to (METHOD.md §5 and §7).

Every baseline is one entry of :data:`BASELINES` (name, one-line description, competitor or
reference, and a factory ``fit(train_items, options) -> predict(items)``); the study, the
reports and the tables read names, order and descriptions from there. Adding a baseline is
one :func:`register` call below. A *competitor* uses only what a real predictor has (the
training data, the question); a *reference* uses the test populations' own answers
(``country-mean-loo``, ``ceiling``) and is shown for scale, never as something to beat.

:data:`MODEL_METHODS` names the language-model methods that follow the baselines in every
table. Each predictor returns a list of probability vectors (numpy arrays) aligned with the
items it is asked to predict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from surveytune.data.items import SurveyItem
from surveytune.methods.metrics import result_rows
from surveytune.methods.params import Constraint, Interval, check_params

Predictor = Callable[[Sequence[SurveyItem]], list[np.ndarray]]
"""``predict(items) -> one probability vector per item``."""

COMPETITOR = "competitor"
REFERENCE = "reference"


@dataclass(frozen=True)
class BaselineOptions:
    """Settings a baseline's factory may read."""

    ceiling_n: int = 1200   # respondents per resample for ``ceiling``
    seed: int = 0

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {"ceiling_n": Interval(1, integer=True),
                                                    "seed": Interval(integer=True)}

    def __post_init__(self) -> None:
        check_params(vars(self), self.CONSTRAINTS, where="BaselineOptions")


@dataclass(frozen=True)
class Baseline:
    """One registered baseline."""

    name: str
    description: str
    kind: str  # COMPETITOR or REFERENCE
    fit: Callable[[Sequence[SurveyItem], BaselineOptions], Predictor]
    population_kinds: tuple[str, ...] = ()  # the populations it applies to; () for any

    @property
    def competitor(self) -> bool:
        return self.kind == COMPETITOR

    def applies_to(self, population_kinds: set[str]) -> bool:
        """Whether it applies to training data of these population kinds."""
        return not self.population_kinds or bool(population_kinds & set(self.population_kinds))


BASELINES: dict[str, Baseline] = {}
"""Every baseline by name, in the order tables show them."""

ZERO_SHOT = "zero-shot"
FINE_TUNED = "fine-tuned"
MODEL_METHODS = {
    ZERO_SHOT: "the language model before fine-tuning",
    FINE_TUNED: "the language model after fine-tuning (checkpoint chosen on valid)",
}
"""The language-model methods, by name, in table order (after the baselines)."""


def register(baseline: Baseline) -> Baseline:
    """Add a baseline to :data:`BASELINES` (at the end of the order); names are unique."""
    if baseline.kind not in (COMPETITOR, REFERENCE):
        raise ValueError(f"baseline kind must be {COMPETITOR!r} or {REFERENCE!r}, "
                         f"got {baseline.kind!r}")
    if baseline.name in BASELINES or baseline.name in MODEL_METHODS:
        raise ValueError(f"a method named {baseline.name!r} is already registered")
    BASELINES[baseline.name] = baseline
    return baseline


def method_names() -> tuple[str, ...]:
    """Every method a result row may name, in table order: baselines, then the models."""
    return (*BASELINES, *MODEL_METHODS)


def competitor_names() -> tuple[str, ...]:
    """The baselines a model result is compared against (not the references)."""
    return tuple(name for name, b in BASELINES.items() if b.competitor)


def method_description(name: str) -> str:
    """One line on what a method is ("" for a name nobody registered)."""
    if name in BASELINES:
        return BASELINES[name].description
    return MODEL_METHODS.get(name, "")


def method_sort_key(name: str) -> tuple[int, str]:
    """Registered methods in :func:`method_names` order, then any other name alphabetically."""
    names = method_names()
    return (names.index(name), "") if name in names else (len(names), name)


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
        predictions.append(_normalised_for(item, mean))
    return predictions


def _normalised_for(item: SurveyItem, mean: np.ndarray) -> np.ndarray:
    """``mean`` renormalised, refused when its question has another option count than the
    item's in the training data."""
    if mean.size != item.n_options:
        raise ValueError(f"item {item.id!r} has {item.n_options} options but its question "
                         f"has {mean.size} in the training data")
    return mean / mean.sum()


def region_mean(train_items: Sequence[SurveyItem],
                items: Sequence[SurveyItem]) -> list[np.ndarray]:
    """Per question, the mean over the training countries of the item's world region.

    The region is the UN M49 sub-region, else the continent (:mod:`surveytune.data.regions`), of
    the nearest level that has a training country answering the question; else the mean of
    all training countries (``country-mean``, including its fallbacks). The item's own
    population is always left out, so on training rows this is a leave-one-out prediction and
    on unseen countries it is unchanged (a question only the item's own population answers
    gets uniform). Populations without a region (subgroups, unknown names) get the
    ``country-mean`` of the other populations.
    """
    from surveytune.data.regions import LEVELS, region_of

    by_question: dict[tuple[str, str], dict[str, np.ndarray]] = defaultdict(dict)
    for item in train_items:
        by_question[_question_key(item)][item.population] = _dist(item)
    fallback = country_mean(train_items, items)
    predictions = []
    for item, backup in zip(items, fallback):
        others = {p: d for p, d in by_question.get(_question_key(item), {}).items()
                  if p != item.population}
        mean = None
        home = region_of(item.population) if item.population_kind == "country" else None
        for level in LEVELS if home is not None and others else ():
            same = [d for p, d in others.items()
                    if (r := region_of(p)) is not None and r.at(level) == home.at(level)]
            if same:
                mean = np.mean(same, axis=0)
                break
        if mean is None and others:
            mean = np.mean(list(others.values()), axis=0)
        if mean is None:
            # No other population answers it: country-mean's fallbacks, unless its question
            # mean would be this population's own answer (a training row): then uniform.
            own = _question_key(item) in by_question
            mean = _uniform(item.n_options) if own else backup
        predictions.append(_normalised_for(item, mean))
    return predictions


def population_style(train_items: Sequence[SurveyItem],
                     items: Sequence[SurveyItem]) -> list[np.ndarray]:
    """The population's own answer style: its mean distribution over the training questions
    with the same number of options (the item's own question left out), else uniform.

    Meant for questions the training data lacks; for an unseen population it is uniform.
    """
    by_style: dict[tuple[str, int], dict[tuple[str, str], np.ndarray]] = defaultdict(dict)
    for item in train_items:
        by_style[(item.population, item.n_options)][_question_key(item)] = _dist(item)
    predictions = []
    for item in items:
        own = by_style.get((item.population, item.n_options), {})
        dists = [d for key, d in own.items() if key != _question_key(item)]
        mean = np.mean(dists, axis=0) if dists else _uniform(item.n_options)
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


def _on_training(baseline: Callable[[Sequence[SurveyItem], Sequence[SurveyItem]],
                                    list[np.ndarray]]) -> Callable[..., Predictor]:
    """A registry ``fit`` for a baseline of ``(train_items, items)``."""
    return lambda train, options: lambda items: baseline(train, items)


register(Baseline("uniform", "every option equally likely", COMPETITOR,
                  lambda train, options: uniform))
register(Baseline("country-mean",
                  "per question, the mean distribution of the training countries", COMPETITOR,
                  _on_training(country_mean),
                  population_kinds=("country",)))
register(Baseline("group-mean",
                  "per question, the mean distribution of the training subgroups (the "
                  "country-mean function on subgroups)", COMPETITOR,
                  _on_training(country_mean),
                  population_kinds=("subgroup",)))
register(Baseline("region-mean",
                  "per question, the mean of the training countries of the same UN sub-region, "
                  "else continent, else all (own population left out)", COMPETITOR,
                  _on_training(region_mean),
                  population_kinds=("country",)))
register(Baseline("population-style",
                  "the population's mean answer over the training questions with the same "
                  "number of options, else uniform", COMPETITOR,
                  _on_training(population_style)))
register(Baseline("country-mean-loo", "per question, the mean distribution of the OTHER "
                  "populations of the same split", REFERENCE,
                  lambda train, options: country_mean_loo))
register(Baseline("ceiling", "the human distribution resampled as a survey of about 1,200 "
                  "respondents (an upper bound given sampling noise)", REFERENCE,
                  lambda train, options: lambda items: ceiling(items, n=options.ceiling_n,
                                                               seed=options.seed)))


def baseline_predictors(train_items: Sequence[SurveyItem], ceiling_n: int = 1200,
                        seed: int = 0, names: Sequence[str] | None = None
                        ) -> dict[str, Predictor]:
    """The ``names`` given (default: every registered baseline that applies to the
    population kinds of ``train_items``: ``country-mean`` and ``region-mean`` for countries,
    ``group-mean`` for subgroups) fitted on ``train_items``, as functions of the items of
    one split, by name, in registry order."""
    options = BaselineOptions(ceiling_n=ceiling_n, seed=seed)
    unknown = sorted(set(names or ()) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; known: {', '.join(BASELINES)}")
    kinds = {item.population_kind for item in train_items}
    return {name: baseline.fit(train_items, options) for name, baseline in BASELINES.items()
            if (name in names if names is not None else baseline.applies_to(kinds))}


def evaluate_baselines(splits: Mapping[str, Sequence[SurveyItem]], train_split: str = "train",
                       ceiling_n: int = 1200, seed: int = 0,
                       keep: Mapping[str, Sequence[int]] | None = None,
                       names: Sequence[str] | None = None) -> list[dict]:
    """One result row (see :func:`surveytune.methods.metrics.result_rows`) per baseline and split.

    Every baseline is fitted on ``splits[train_split]``; a missing train split raises.
    ``keep`` optionally restricts scoring to some items of a split (a subsample evaluated
    by a model too); the baselines still see the whole split, so ``country-mean-loo``
    averages over all other populations, not only the sampled ones. ``names`` restricts
    the baselines (default: every registered one).
    """
    if train_split not in splits:
        raise ValueError(f"country-mean needs the training split {train_split!r}, but the "
                         f"splits given are {sorted(splits)}")
    predictors = baseline_predictors(splits[train_split], ceiling_n, seed, names)
    rows = []
    for name, predict in predictors.items():
        for split, items in splits.items():
            predictions = predict(items)
            index = range(len(items)) if keep is None or split not in keep else keep[split]
            rows.append(result_rows(name, split, [items[i] for i in index],
                                    [predictions[i] for i in index]))
    return rows
