"""The paper's WVS-7 train/valid/test splits, and user-defined hold-out splits.

The paper (METHOD.md §4) crosses three country sets with three question ranges:

* C1 is every country of the paper's WVS-7 (v5.0) country list that is not in C2 or C3.
* C2 and C3 are the unseen countries. Nigeria and Morocco are in both.
* Q1 (1-163), Q2 (164-198) and Q3 (199-259) are the question ranges; the questions in
  :data:`EXCLUDED_QIDS` are dropped.

Countries outside the paper's list (India in the unified file) belong to no split.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from surveytune.data.items import DataError, SurveyItem
from surveytune.data.split_names import SPLIT_TABLE

PAPER_COUNTRIES = frozenset({
    "Albania", "Andorra", "Argentina", "Armenia", "Australia", "Austria", "Azerbaijan",
    "Bangladesh", "Belarus", "Bolivia", "Bosnia Herzegovina", "Brazil", "Bulgaria", "Canada",
    "Chile", "China", "Colombia", "Croatia", "Cyprus", "Czechia", "Denmark", "Ecuador", "Egypt",
    "Estonia", "Ethiopia", "Finland", "France", "Georgia", "Germany", "Great Britain", "Greece",
    "Guatemala", "Hong Kong SAR", "Hungary", "Iceland", "Indonesia", "Iran", "Iraq", "Italy",
    "Japan", "Jordan", "Kazakhstan", "Kenya", "Kyrgyzstan", "Latvia", "Lebanon", "Libya",
    "Lithuania", "Macao SAR", "Malaysia", "Maldives", "Mexico", "Mongolia", "Montenegro",
    "Morocco", "Myanmar", "Netherlands", "New Zealand", "Nicaragua", "Nigeria",
    "North Macedonia", "Northern Ireland", "Norway", "Pakistan", "Peru", "Philippines", "Poland",
    "Portugal", "Puerto Rico", "Romania", "Russia", "Serbia", "Singapore", "Slovakia",
    "Slovenia", "South Korea", "Spain", "Sweden", "Switzerland", "Taiwan ROC", "Tajikistan",
    "Thailand", "Tunisia", "Turkey", "Ukraine", "United States", "Uruguay", "Venezuela",
    "Vietnam", "Zimbabwe",
})
"""The paper's 90 WVS-7 countries (``country_codes_config_setting.yaml``)."""

C2 = frozenset({"Egypt", "Ethiopia", "Kenya", "Libya", "Morocco", "Nigeria", "Tunisia",
                "Zimbabwe"})
C3 = frozenset({"Malaysia", "Thailand", "Czechia", "Greece", "Nigeria", "Morocco", "Peru",
                "Colombia", "Mexico", "Puerto Rico", "New Zealand"})
C1 = PAPER_COUNTRIES - C2 - C3

Q1 = range(1, 164)
Q2 = range(164, 199)
Q3 = range(199, 260)
EXCLUDED_QIDS = frozenset({82, 223, *range(94, 106)})

PAPER_SPLITS = ("train", "valid", "test_1", "test_2", "test_3", "test_4", "test_5", "test_6",
                "test_7")

UNSEEN_SURVEY = "goqa"
"""GlobalOpinionQA's Pew rows (its WVS rows removed), as the unseen-survey split."""

PAPER_EVAL_SPLITS = (*PAPER_SPLITS[1:], UNSEEN_SURVEY)
"""The splits a model of the paper's study is scored on: all but train, and the unseen survey."""

GSS_SPLITS = ("train", "valid", "test_questions", "test_groups", "test_both")
"""The splits of :func:`gss_splits`, in report order."""

HOLDOUT_SPLITS = ("train", "test_questions", "test_populations", "test_both")
"""The splits of :func:`holdout_splits`."""

SPLIT_ORDER = tuple(SPLIT_TABLE)
"""The order of reports: :data:`~surveytune.data.split_names.SPLIT_TABLE`'s."""


def split_sort_key(name: str) -> tuple[int, str]:
    """Known splits in :data:`SPLIT_ORDER`, then any other name alphabetically."""
    if name in SPLIT_TABLE:
        return (SPLIT_ORDER.index(name), "")
    return (len(SPLIT_ORDER), name)


def split_description(name: str, wording: Mapping[str, str] | None = None) -> str:
    """What a split holds, for reports: a study's own ``wording`` for it where it has one,
    else :data:`~surveytune.data.split_names.SPLIT_TABLE`'s ("" for a name we do not know)."""
    if wording and name in wording:
        return wording[name]
    return SPLIT_TABLE.get(name, "")


_GRID = {
    ("C1", 0): "train", ("C1", 1): "valid", ("C1", 2): "test_1",
    ("C2", 0): "test_2", ("C2", 1): "test_3", ("C2", 2): "test_4",
    ("C3", 0): "test_5", ("C3", 1): "test_6", ("C3", 2): "test_7",
}


def paper_split_names(country: str, qid: int) -> tuple[str, ...]:
    """The paper's split(s) of one (country, WVS question number); empty when in none.

    Nigeria and Morocco are in C2 and C3, so they get two names.
    """
    if qid in EXCLUDED_QIDS or country not in PAPER_COUNTRIES:
        return ()
    ranges = [i for i, r in enumerate((Q1, Q2, Q3)) if qid in r]
    if not ranges:
        return ()
    sets = [name for name, members in (("C2", C2), ("C3", C3)) if country in members] or ["C1"]
    return tuple(_GRID[(s, ranges[0])] for s in sets)


def _wvs_qid(item: SurveyItem) -> int | None:
    if item.survey != "wvs7" or not item.question_id.startswith("Q"):
        return None
    number = item.question_id[1:]
    return int(number) if number.isdigit() else None


def build_paper_splits(items: Iterable[SurveyItem]) -> dict[str, list[SurveyItem]]:
    """Assign the WVS items to the paper's splits, with ``split`` set, keyed in PAPER_SPLITS order.

    An item in two splits (Nigeria, Morocco) appears in both. Items that are not WVS-7
    (``survey == "wvs7"``, ``question_id == "Q<n>"``), excluded questions and countries outside
    the paper's list are left out. Every split name is present, possibly with an empty list.
    """
    splits: dict[str, list[SurveyItem]] = {name: [] for name in PAPER_SPLITS}
    for item in items:
        qid = _wvs_qid(item)
        if qid is None:
            continue
        for name in paper_split_names(item.population, qid):
            splits[name].append(item.replace(split=name))
    return splits


def _check_names(names: Sequence[str], known: Sequence[str], what: str) -> None:
    known_set = set(known)
    for name in names:
        if name not in known_set:
            shown = ", ".join(repr(k) for k in known[:8])
            more = f" (and {len(known) - 8} more)" if len(known) > 8 else ""
            raise DataError(f"unknown {what} {name!r}; known: {shown}{more}")


def _held_out(all_names: list[str], named: Sequence[str], fraction: float,
              rng: random.Random, what: str) -> set[str]:
    if isinstance(named, str):
        named = (named,)
    _check_names(named, all_names, what)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"{what} fraction must be in [0, 1), got {fraction}")
    held = set(named)
    rest = [n for n in all_names if n not in held]
    count = round(fraction * len(all_names)) - len(held)
    if count > 0:
        held.update(rng.sample(rest, min(count, len(rest))))
    return held


def holdout_splits(items: Iterable[SurveyItem], *, populations: Sequence[str] = (),
                   questions: Sequence[str] = (), population_fraction: float = 0.0,
                   question_fraction: float = 0.0, seed: int = 0) -> dict[str, list[SurveyItem]]:
    """Split items by held-out populations and questions.

    The held-out populations are the ``populations`` named, plus random ones (seeded) up to
    ``population_fraction`` of all populations; likewise for questions (by ``question_id``).
    Splits: "train" (neither held out), "test_questions" (unseen questions of seen
    populations), "test_populations" (seen questions of unseen populations) and "test_both".
    Each item gets ``split`` set. Empty splits are left out. The result depends only on the
    items' populations and question ids and on ``seed``, not on the order of ``items``.
    """
    items = list(items)
    all_populations = sorted({i.population for i in items})
    all_questions = sorted({i.question_id for i in items})
    rng = random.Random(seed)
    held_pop = _held_out(all_populations, populations, population_fraction, rng, "population")
    held_q = _held_out(all_questions, questions, question_fraction, rng, "question")
    train, questions, populations, both = HOLDOUT_SPLITS
    names = {(False, False): train, (False, True): questions,
             (True, False): populations, (True, True): both}
    splits: dict[str, list[SurveyItem]] = {n: [] for n in names.values()}
    for item in items:
        name = names[(item.population in held_pop, item.question_id in held_q)]
        splits[name].append(item.replace(split=name))
    return {name: members for name, members in splits.items() if members}


def select_splits(splits: Mapping[str, list[SurveyItem]],
                  names: Iterable[str]) -> dict[str, list[SurveyItem]]:
    """The named splits, in the order given; unknown names raise DataError."""
    names = [names] if isinstance(names, str) else list(names)
    _check_names(names, list(splits), "split")
    return {name: splits[name] for name in names}


def sample_by_question(items: Sequence[SurveyItem], n_items: int, seed: int = 0) -> list[int]:
    """Indices of a seeded sample of whole questions (all their populations) with at least
    ``n_items`` items, in input order. Whole questions keep between-population measures
    meaningful on a subsample."""
    questions = sorted({(i.survey, i.question_id) for i in items})
    order = np.random.default_rng(seed).permutation(len(questions))
    by_question: dict[tuple[str, str], list[int]] = {}
    for index, item in enumerate(items):
        by_question.setdefault((item.survey, item.question_id), []).append(index)
    chosen: list[int] = []
    for q in order:
        if len(chosen) >= n_items:
            break
        chosen += by_question[questions[q]]
    return sorted(chosen)


def sample_questions(splits: Mapping[str, Sequence[SurveyItem]], fraction: float,
                     seed: int = 0, minimum: int = 2) -> frozenset[tuple[str, str]]:
    """A seeded ``fraction`` of the questions, stratified by question group, as
    ``(survey, question_id)`` keys; at least ``minimum`` per group.

    A question's group is the first split (in ``splits`` order) that holds it; with the
    paper's splits that is train (Q1), valid (Q2) and test_1 (Q3). The same questions then
    define a smaller study in every split: training and evaluation keep their relation
    (seen vs unseen questions), and no label is looked at to choose them.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    kept: set[tuple[str, str]] = set()
    for items in splits.values():
        group = sorted({(i.survey, i.question_id) for i in items} - seen)
        seen.update(group)
        count = min(len(group), max(minimum, round(fraction * len(group))))
        kept.update(rng.sample(group, count))
    return frozenset(kept)


def carve_populations(items: Sequence[SurveyItem], count: int, seed: int = 0
                      ) -> tuple[list[SurveyItem], list[SurveyItem]]:
    """Split training items into (kept, held-out) by a seeded sample of ``count`` whole
    populations: validation data for unseen-population ability that uses no test row."""
    populations = sorted({i.population for i in items})
    if not 0 < count < len(populations):
        raise ValueError(f"cannot hold out {count} of the {len(populations)} training "
                         "populations: leave at least one to train on")
    held = set(random.Random(seed).sample(populations, count))
    return ([i for i in items if i.population not in held],
            [i for i in items if i.population in held])


def gss_splits(items: Iterable[SurveyItem], *, held_groups: int = 6,
               valid_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
               ) -> dict[str, list[SurveyItem]]:
    """The subgroup study's splits of SubPOP's GSS items (``"ATTRIBUTE: group"`` populations).

    Groups: ``held_groups`` whole subgroups are held out, at most one per attribute (attributes
    and then the group within each drawn with ``seed``), so every attribute keeps a training
    group: the model has seen the attribute but never the held-out group (e.g. Republicans held
    out while Democrats are trained). Questions (``question_id``): a seeded ``valid_fraction``
    and ``test_fraction`` of them are held out. Splits:

    * ``train``: training groups x training questions
    * ``valid``: training groups x valid questions (chooses the checkpoint; not a test split)
    * ``test_questions``: training groups x test questions
    * ``test_groups``: held-out groups x training questions
    * ``test_both``: held-out groups x test questions

    Held-out groups x valid questions belong to no split, so valid never sees a test group.
    The result depends on the items' populations and question ids and on ``seed`` only.
    """
    items = list(items)
    by_attribute: dict[str, list[str]] = {}
    for population in sorted({i.population for i in items}):
        attribute = population.partition(": ")[0]
        by_attribute.setdefault(attribute, []).append(population)
    eligible = sorted(a for a, groups in by_attribute.items() if len(groups) > 1)
    if not 0 < held_groups <= len(eligible):
        raise DataError(f"cannot hold out {held_groups} groups, at most one from each of the "
                        f"{len(eligible)} attributes with two or more groups")
    rng = random.Random(seed)
    held = {rng.choice(by_attribute[a]) for a in sorted(rng.sample(eligible, held_groups))}
    questions = sorted({i.question_id for i in items})
    rng.shuffle(questions)
    n_valid = max(1, round(valid_fraction * len(questions)))
    n_test = max(1, round(test_fraction * len(questions)))
    if n_valid + n_test >= len(questions):
        raise DataError(f"{len(questions)} questions are too few to hold out {n_valid} valid "
                        f"and {n_test} test questions")
    valid_q = set(questions[:n_valid])
    test_q = set(questions[n_valid:n_valid + n_test])
    splits: dict[str, list[SurveyItem]] = {name: [] for name in GSS_SPLITS}
    for item in items:
        group_out = item.population in held
        kind = "test" if item.question_id in test_q else (
            "valid" if item.question_id in valid_q else "train")
        name = {(False, "train"): "train", (False, "valid"): "valid",
                (False, "test"): "test_questions", (True, "train"): "test_groups",
                (True, "test"): "test_both"}.get((group_out, kind))
        if name is not None:
            splits[name].append(item.replace(split=name))
    return splits


def held_out_groups(splits: Mapping[str, Sequence[SurveyItem]]) -> list[str]:
    """The populations of a :func:`gss_splits` result that are not in its train split."""
    trained = {i.population for i in splits.get("train", ())}
    return sorted({i.population for items in splits.values() for i in items} - trained)


CARVED_VALID_FRACTION = 0.1
"""The share of a training file's questions ``train`` validates on when no --valid is given."""


def carve_questions(items: Sequence[SurveyItem], fraction: float = CARVED_VALID_FRACTION,
                    seed: int = 0) -> tuple[list[SurveyItem], list[SurveyItem]]:
    """Split training items into (kept, validation) by a seeded sample of whole questions
    (``fraction`` of them, at least one, leaving at least one to train on); the validation
    items get ``split="valid"``. Nothing of a test file is touched."""
    questions = sorted({(i.survey, i.question_id) for i in items})
    if len(questions) < 2:
        raise ValueError("cannot carve validation questions from a file with one question; "
                         "give a validation file")
    count = min(len(questions) - 1, max(1, round(fraction * len(questions))))
    held = set(random.Random(seed).sample(questions, count))
    return ([i for i in items if (i.survey, i.question_id) not in held],
            [i.replace(split="valid") for i in items if (i.survey, i.question_id) in held])
