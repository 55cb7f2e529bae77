"""The one item type of surveytune and the one place where bad input is refused.

A :class:`SurveyItem` is one (survey, question, population) triple with the human answer
distribution aligned to the ordered answer options. Every loader builds items through
:func:`make_item`, so every input format is checked by the same rules.
"""

from __future__ import annotations

import math
import os
import string
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from surveytune.data.split_names import SPLIT_TABLE

LETTERS = string.ascii_uppercase
"""Option letters, in order. An item may have at most ``len(LETTERS)`` options."""

SUM_TOLERANCE = 0.05
"""A distribution whose sum is further than this from 1 is refused; closer, it is renormalised."""

ROUNDING_TOLERANCE = 1e-3
"""Sums this close to 1 are rounding (shares printed to 4 decimals) and renormalised silently."""

POPULATION_KINDS = ("country", "subgroup", "custom")
"""A country or an "ATTRIBUTE: group" subgroup of :mod:`surveytune.data.populations`, or a
custom population: not checked against that vocabulary, named as written in the country
prompt."""

LANGUAGES = ("en", "zh")
"""Languages with a prompt template (see :mod:`surveytune.methods.prompts`)."""

SPLITS = tuple(SPLIT_TABLE)
"""Known ``split`` values: every name of :data:`surveytune.data.split_names.SPLIT_TABLE`."""

MAX_QUESTION_CHARS = 10_000
"""A question text longer than this is refused at load time (no survey question is that long)."""

MAX_OPTION_CHARS = 1_000
"""An option label longer than this is refused at load time."""


class DataError(ValueError):
    """Bad input, located by file, line and field. ``str()`` is a one-line message."""

    def __init__(self, message: str, *, file: str | os.PathLike | None = None,
                 line: int | None = None, field: str | None = None) -> None:
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        what = f" field '{self.field}':" if self.field else ""
        return f"{where}:{what} {self.message}"


class DataWarning(UserWarning):
    """Input that was accepted after a repair (e.g. a renormalised distribution)."""


@dataclass(frozen=True)
class Source:
    """Where a record came from, for error messages."""

    file: str | None = None
    line: int | None = None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, file=self.file, line=self.line, field=field)


@dataclass(frozen=True)
class SurveyItem:
    """One question asked of one population, with the population's answer shares."""

    id: str
    survey: str
    question_id: str
    question: str
    options: tuple[str, ...]
    distribution: tuple[float, ...]
    population: str
    population_kind: str = "country"
    ordinal: bool = False
    split: str | None = None
    language: str = "en"
    # The option positions (0-based, increasing) that form the item's ordered answer scale,
    # when some options are off it (e.g. WVS code 0 "Hard to say", lettered first); None means
    # every option, in order. The order-aware ``emd`` runs over these positions only.
    scale_positions: tuple[int, ...] | None = None
    # Where the item was read from; not part of its identity or of the canonical format.
    source: Source = field(default=Source(), compare=False, repr=False)

    @property
    def n_options(self) -> int:
        return len(self.options)

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    @property
    def ordered_positions(self) -> tuple[int, ...]:
        """The positions of the ordered scale's options (every position unless restricted)."""
        if self.scale_positions is None:
            return tuple(range(len(self.options)))
        return self.scale_positions

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON record (the generic JSONL format)."""
        record = asdict(self)
        record.pop("source")
        if self.scale_positions is None:  # records of unrestricted items stay as they were
            record.pop("scale_positions")
        else:
            record["scale_positions"] = list(self.scale_positions)
        record["options"] = list(self.options)
        record["distribution"] = list(self.distribution)
        return record

    def replace(self, **changes: Any) -> SurveyItem:
        from dataclasses import replace

        return replace(self, **changes)


def _as_float(value: Any, source: Source, field: str) -> float:
    # Strings are refused: in JSON "0.5" is text, not a number (CSV loaders convert first).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise source.error(f"expected a number, got {_short(value)}", field)
    try:
        number = float(value)
    except OverflowError:
        raise source.error("number too large for a float", field) from None
    if math.isinf(number):
        raise source.error(f"number too large for a float ({number})", field)
    if math.isnan(number):
        raise source.error(f"probability is {number}", field)
    if number < 0:
        raise source.error(f"negative probability {number}", field)
    return number


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that error messages stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_text(value: str, source: Source, field: str, limit: int | None = None) -> None:
    """Refuse text that cannot be written as UTF-8 (lone surrogates) or is over ``limit``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise source.error(f"invalid character {value[exc.start]!r} (a lone surrogate) at "
                           f"position {exc.start}", field) from None
    if limit is not None and len(value) > limit:
        raise source.error(f"{len(value)} characters, more than the limit of {limit}", field)


def check_distribution(values: Sequence[Any], n_options: int, source: Source,
                       field: str = "distribution", scale: float = 1.0,
                       tolerance: float = SUM_TOLERANCE,
                       rounding_tolerance: float = ROUNDING_TOLERANCE) -> tuple[float, ...]:
    """Validate a distribution and return it as fractions summing to exactly 1.

    ``scale`` is 100 for percentages. Sums within ``rounding_tolerance`` of 1 are renormalised
    silently, within ``tolerance`` with a :class:`DataWarning`; anything else (NaN, negatives,
    wrong length, far sums) raises.
    """
    if not isinstance(values, (list, tuple)):
        raise source.error(f"expected a list of probabilities, got {type(values).__name__}", field)
    if len(values) != n_options:
        raise source.error(f"has {len(values)} probabilities for {n_options} options", field)
    probs = [_as_float(v, source, f"{field}[{i}]") / scale for i, v in enumerate(values)]
    total = sum(probs)
    if abs(total - 1.0) > tolerance:
        unit = "%" if scale == 100 else ""
        raise source.error(
            f"sums to {total * scale:.4g}{unit}, more than {tolerance * scale:g}{unit} from "
            f"{scale:g}{unit}", field)
    if abs(total - 1.0) > rounding_tolerance:
        warnings.warn(f"{source.file}:{source.line}: {field} sums to {total:.4f}; renormalised",
                      DataWarning, stacklevel=2)
    return tuple(p / total for p in probs)


def make_item(*, survey: str, question_id: Any, question: Any, options: Any,
              distribution: Sequence[Any], population: Any, population_kind: str = "country",
              ordinal: bool = False, split: str | None = None, language: str = "en",
              id: str | None = None, source: Source = Source(), scale: float = 1.0,
              distribution_field: str = "distribution",
              rounding_tolerance: float = ROUNDING_TOLERANCE,
              allow_duplicate_options: bool = False,
              scale_positions: Sequence[int] | None = None) -> SurveyItem:
    """Build a validated :class:`SurveyItem`; raise :class:`DataError` naming the bad field.

    ``question_id`` must be a string (a JSON number such as ``5`` is refused, so that ``5`` and
    ``"5"`` never name one question). ``allow_duplicate_options`` is only for the public files
    whose option lists have a known defect (repeated labels); user files never get it.
    ``scale_positions`` (see :class:`SurveyItem`) must be at least 2 increasing positions of
    ``options`` holding some of the distribution's mass.
    """
    for name, value in (("question", question), ("population", population)):
        if not isinstance(value, str) or not value.strip():
            raise source.error("missing or empty", name)
    if question_id is None or (isinstance(question_id, str) and not question_id.strip()):
        raise source.error("missing or empty", "question_id")
    if not isinstance(question_id, str):
        raise source.error(f"expected a string, got {type(question_id).__name__} "
                           f"{_short(question_id)}", "question_id")
    check_text(question_id, source, "question_id")
    check_text(question, source, "question", MAX_QUESTION_CHARS)
    check_text(population, source, "population", MAX_OPTION_CHARS)
    check_text(survey, source, "survey")
    if id is not None:
        check_text(id, source, "id")
    if not isinstance(options, (list, tuple)) or not options:
        raise source.error("expected a non-empty list of option labels", "options")
    seen: dict[str, int] = {}
    for i, label in enumerate(options):
        if not isinstance(label, str) or not label.strip():
            raise source.error(f"option {i} is not a non-empty string: {_short(label)}",
                               "options")
        check_text(label, source, f"options[{i}]", MAX_OPTION_CHARS)
        if label.strip() in seen and not allow_duplicate_options:
            raise source.error(f"option {i} repeats option {seen[label.strip()]} "
                               f"{_short(label.strip())}", "options")
        seen.setdefault(label.strip(), i)
    if len(options) < 2:
        raise source.error("an item needs at least 2 options", "options")
    if len(options) > len(LETTERS):
        raise source.error(
            f"{len(options)} options, more than the {len(LETTERS)} letters A-Z", "options")
    if population_kind not in POPULATION_KINDS:
        raise source.error(f"must be one of {', '.join(POPULATION_KINDS)}, got "
                           f"{_short(population_kind)}",
                           "population_kind")
    if not isinstance(ordinal, bool):
        raise source.error(f"expected true or false, got {_short(ordinal)}", "ordinal")
    if split is not None and split not in SPLITS:
        raise source.error(f"unknown split {_short(split)}; known: {', '.join(SPLITS)}",
                           "split")
    if language not in LANGUAGES:
        raise source.error(f"unknown language {_short(language)}; known: "
                           f"{', '.join(LANGUAGES)}", "language")
    dist = check_distribution(distribution, len(options), source, distribution_field, scale,
                              rounding_tolerance=rounding_tolerance)
    positions = _check_scale_positions(scale_positions, dist, source)
    return SurveyItem(
        id=id if id is not None else f"{survey}:{question_id}:{population}",
        survey=survey, question_id=question_id, question=question.strip(),
        options=tuple(o.strip() for o in options), distribution=dist, population=population,
        population_kind=population_kind, ordinal=ordinal, split=split, language=language,
        scale_positions=positions, source=source)


def _check_scale_positions(positions: Sequence[int] | None, dist: Sequence[float],
                           source: Source) -> tuple[int, ...] | None:
    """``positions`` as a tuple, or None when absent or covering every option in order."""
    if positions is None:
        return None
    name = "scale_positions"
    if not isinstance(positions, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in positions):
        raise source.error(f"expected a list of option positions, got {positions!r}", name)
    if len(positions) < 2:
        raise source.error("an ordered scale needs at least 2 options", name)
    if positions[0] < 0 or positions[-1] >= len(dist) or any(
            a >= b for a, b in zip(positions, positions[1:])):
        raise source.error(f"expected increasing positions in 0..{len(dist) - 1}, got "
                           f"{list(positions)}", name)
    if sum(dist[i] for i in positions) <= 0:
        raise source.error("the distribution has no mass on the scale's options", name)
    if len(positions) == len(dist):
        return None
    return tuple(positions)


def check_unique_ids(items: Iterable[SurveyItem]) -> None:
    """Refuse two items with one id, naming where both came from."""
    seen: dict[str, SurveyItem] = {}
    for item in items:
        if item.id in seen:
            first = seen[item.id].source
            raise item.source.error(
                f"duplicate id {item.id!r} (first at {first.file}:{first.line})", "id")
        seen[item.id] = item


def odd_option_list(question_id: str, entries: Sequence[tuple[str, Sequence[str], Source]],
                    *, noun: str = "option",
                    row_sources: Sequence[dict[str, Source]] | None = None) -> DataError | None:
    """The error for the population whose option list breaks its question's (None when all
    agree).

    ``entries`` are one question's (population, options, source). The question's options are
    the list most of its populations have (a tie goes to the longer list: a missing row is
    likelier than an extra one), so the population blamed is the odd one out wherever it sits
    in the file. An extra option is blamed at its own row when ``row_sources`` (per entry,
    option -> source) says where that is.
    """
    counts = Counter(tuple(options) for _, options, _ in entries)
    if len(counts) < 2:
        return None
    usual = max(counts, key=lambda options: (counts[options], len(options)))
    example = next(source for _, options, source in entries if tuple(options) == usual)
    one = counts[usual] == 1
    others = "its other population" if one else f"its other {counts[usual]} populations"
    have, lack = ("has", "lacks") if one else ("have", "lack")
    for index, (population, options, source) in enumerate(entries):
        if tuple(options) == usual:
            continue
        missing = [label for label in usual if label not in options]
        extra = [label for label in options if label not in usual]
        if missing:
            what = (f"has no {noun} {_short(missing[0])} that {others} {have} (e.g. at "
                    f"{example.file}:{example.line})")
        elif extra:
            what = (f"has an extra {noun} {_short(extra[0])} that {others} {lack} (they have "
                    f"{', '.join(usual)})")
            if row_sources is not None:
                source = row_sources[index][extra[0]]
        else:
            what = (f"lists its options in another order than {others} (e.g. at "
                    f"{example.file}:{example.line})")
        return source.error(f"question {_short(question_id)}, population {_short(population)} "
                            f"{what}", "option" if row_sources is not None else "options")
    return None


def check_consistent_questions(items: Iterable[SurveyItem]) -> None:
    """Refuse one (survey, question_id) with different question texts or option lists. Texts
    that differ only in whitespace are the same question; for option lists the population
    that differs from most of the question's populations is blamed (:func:`odd_option_list`).
    """
    by_question: dict[tuple[str, str], list[SurveyItem]] = {}
    for item in items:
        by_question.setdefault((item.survey, item.question_id), []).append(item)
    for (_, question_id), group in by_question.items():
        seen = group[0]
        for item in group[1:]:
            if " ".join(item.question.split()) != " ".join(seen.question.split()):
                where = f"{seen.source.file}:{seen.source.line}"
                raise item.source.error(
                    f"question_id {_short(question_id)} has other question at {where}",
                    "question")
        error = odd_option_list(question_id, [(i.population, i.options, i.source)
                                              for i in group])
        if error is not None:
            raise error


def describe(items: Sequence[SurveyItem]) -> dict[str, int]:
    """Counts a person wants to see about a set of items."""
    return {"items": len(items),
            "populations": len({i.population for i in items}),
            "questions": len({(i.survey, i.question_id) for i in items}),
            "surveys": len({i.survey for i in items})}
