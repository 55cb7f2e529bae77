"""Predictions from what is already known: real answers of other populations to the same
question, weighted by how alike each is to the population asked about.

For a cell (population ``p``, question ``q``) the prediction is the mean of the known answers
of the other populations to ``q``, each weighted by ``exp(similarity(p, c) / temperature)``.
The similarity of two populations is the mean 1-jsd of their answers to the questions both
answered, ``q`` itself left out, shrunk toward the mean similarity of population pairs as near
in world region (same UN sub-region, continent, or neither): a pair that shares few answers
(an unseen country with a few observed ones) is weighted mostly by region, like
``region-mean``, and a pair that shares many by its own answers. A question nobody else
answered gets the mean of the known answers with as many options (``country-mean``'s
fallback), else uniform.

The known answers are a training file and what the user observed (``--observed``): a new
question asked of a few countries, or a new country's answers to a few questions. A cell that
is itself known is returned as known. The temperature is chosen on the known answers only, by
predicting a seeded sample of them from the others (leave one cell out).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from surveytune.data.items import SurveyItem
from surveytune.methods.metrics import one_minus_jsd
from surveytune.methods.priors import floored_logs

__all__ = ["TEMPERATURES", "ObservedPrior", "SimilarPopulations"]

TEMPERATURES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1.0)
"""The grid the weighting temperature is chosen from (1.0: nearly equal weights)."""

PRIOR_QUESTIONS = 20
"""How many shared questions' worth the region prior of a pair's similarity counts: chosen on
6 held-out training countries (seed 0) with 3 or 10 observed questions each, from 0, 5, 20 and
50 (docs/ablations.md, "Observed countries")."""

FIT_CELLS = 400
"""Known cells predicted from the others to choose the temperature (a seeded sample)."""

Question = tuple[str, str]


@dataclass
class SimilarPopulations:
    """The known answers, indexed for similarity-weighted prediction (see the module)."""

    answers: dict[Question, dict[str, np.ndarray]]
    totals: dict[tuple[str, str], float]    # (p, c) -> summed 1-jsd over shared questions
    counts: dict[tuple[str, str], int]      # (p, c) -> shared questions
    temperature: float = 0.05

    def __post_init__(self) -> None:
        self._by_k: dict[int, np.ndarray] = {}  # the fallback per option count
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for pair, total in self.totals.items():
            level = _relation(*pair)
            sums[level] = sums.get(level, 0.0) + total
            counts[level] = counts.get(level, 0) + self.counts[pair]
        # mean 1-jsd of population pairs by how near they are: the similarity's prior
        self._level_means = {level: sums[level] / counts[level] for level in sums}
        self._overall = (sum(sums.values()) / sum(counts.values())) if counts else 0.0

    @classmethod
    def fit(cls, known: Sequence[SurveyItem], *, temperature: float | None = None,
            seed: int = 0) -> SimilarPopulations:
        """Index ``known`` and choose the temperature on it (unless one is given)."""
        answers: dict[Question, dict[str, np.ndarray]] = {}
        for item in known:
            answers.setdefault((item.survey, item.question_id), {})[item.population] = (
                np.asarray(item.distribution, dtype=float))
        totals: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], int] = {}
        for by_population in answers.values():
            names = sorted(by_population)
            if len(names) < 2:
                continue
            pairs = list(combinations(range(len(names)), 2))
            stacked = np.array([by_population[n] for n in names])
            first, second = np.array(pairs).T
            for (i, j), value in zip(pairs, one_minus_jsd(stacked[first], stacked[second])):
                for key in ((names[i], names[j]), (names[j], names[i])):
                    totals[key] = totals.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
        table = cls(answers, totals, counts)
        table.temperature = (temperature if temperature is not None
                             else table._choose_temperature(seed))
        return table

    def known(self, item: SurveyItem) -> np.ndarray | None:
        """The known answer of the item's cell, or None."""
        return self.answers.get((item.survey, item.question_id), {}).get(item.population)

    def _similarity(self, population: str, other: str, question: Question) -> float:
        """Mean 1-jsd over the questions both answered, ``question`` left out, shrunk toward
        the mean of population pairs as near in region (:data:`PRIOR_QUESTIONS` questions'
        worth): a pair that shares a few answers says less than its region does."""
        total = self.totals.get((population, other), 0.0)
        count = self.counts.get((population, other), 0)
        own = self.answers.get(question, {})
        if population in own and other in own:
            total -= float(one_minus_jsd(own[population], own[other]))
            count -= 1
        prior = self._level_means.get(_relation(population, other), self._overall)
        return (total + PRIOR_QUESTIONS * prior) / (count + PRIOR_QUESTIONS)

    def _weights(self, population: str, others: Sequence[str], question: Question,
                 temperature: float) -> np.ndarray:
        values = np.array([self._similarity(population, other, question) for other in others])
        return np.exp((values - values.max()) / temperature)

    def _predict_cell(self, item: SurveyItem, temperature: float,
                      leave_out: bool = False) -> np.ndarray:
        question = (item.survey, item.question_id)
        if not leave_out:
            own = self.known(item)
            if own is not None:
                return own
        others = {p: d for p, d in self.answers.get(question, {}).items()
                  if p != item.population and d.size == item.n_options}
        if not others:
            return self._fallback(item)
        names = list(others)
        weights = self._weights(item.population, names, question, temperature)
        mean = np.average(np.array([others[n] for n in names]), axis=0, weights=weights)
        return mean / mean.sum()

    def _fallback(self, item: SurveyItem) -> np.ndarray:
        k = item.n_options
        if k not in self._by_k:
            same_k = [d for answers in self.answers.values() for d in answers.values()
                      if d.size == k]
            mean = np.mean(same_k, axis=0) if same_k else np.full(k, 1.0 / k)
            self._by_k[k] = mean / mean.sum()
        return self._by_k[k]

    def predict(self, items: Sequence[SurveyItem]) -> list[np.ndarray]:
        """One distribution per item: its known answer, else the weighted mean."""
        return [self._predict_cell(item, self.temperature) for item in items]

    def _choose_temperature(self, seed: int) -> float:
        cells = [(q, p) for q, answers in self.answers.items() if len(answers) > 1
                 for p in answers]
        if not cells:
            return TEMPERATURES[0]
        rng = random.Random(seed)
        sample = rng.sample(cells, min(FIT_CELLS, len(cells)))
        best, best_score = TEMPERATURES[0], -np.inf
        for temperature in TEMPERATURES:
            scores = []
            for (survey, question_id), population in sample:
                truth = self.answers[(survey, question_id)][population]
                probe = _Cell(survey, question_id, population, truth.size)
                guess = self._predict_cell(probe, temperature, leave_out=True)
                scores.append(float(one_minus_jsd(truth, guess)))
            if np.mean(scores) > best_score:
                best, best_score = temperature, float(np.mean(scores))
        return best


@dataclass
class ObservedPrior:
    """:class:`SimilarPopulations` as the prior of the anchored model (the role
    :class:`~surveytune.methods.priors.Prior` plays with the training rows alone): the model
    then says how a population departs from the answers of the populations most like it.

    Its calibration group (:mod:`surveytune.methods.calibration`) is ``seen`` for an item whose
    question another population answered (the prior knows the question's answers, as the
    training prior does for a training question), else ``unseen``."""

    table: SimilarPopulations

    @classmethod
    def fit(cls, known: Sequence[SurveyItem], *, seed: int = 0) -> ObservedPrior:
        return cls(SimilarPopulations.fit(known, seed=seed))

    def log_priors(self, items: Sequence[SurveyItem]) -> list[np.ndarray]:
        return floored_logs(self.table.predict(items))

    def groups(self, items: Sequence[SurveyItem]) -> list[str]:
        answers = self.table.answers
        return ["seen" if set(answers.get((i.survey, i.question_id), ())) - {i.population}
                else "unseen" for i in items]


@dataclass(frozen=True)
class _Cell:
    """The parts of an item a prediction reads (for the leave-one-out fit)."""

    survey: str
    question_id: str
    population: str
    n_options: int


def _relation(population: str, other: str) -> str:
    """How near two populations are: the same UN sub-region, continent, or neither (also
    when one has no region, e.g. a subgroup)."""
    from surveytune.data.regions import region_of

    home, away = region_of(population), region_of(other)
    if home is None or away is None:
        return "other"
    if home.subregion == away.subregion:
        return "subregion"
    return "continent" if home.continent == away.continent else "other"
