"""A questionnaire: questions and their options without answers, to predict for populations;
and the long-form table the predictions are written as.

Two formats, by extension (a survey file with answers is read as its questions too)::

    question_id,question,option              (.csv: one row per option, in answer order)
    q1,Do you trust your neighbours?,Yes
    q1,Do you trust your neighbours?,No

    {"question_id": "q1", "question": "Do you trust your neighbours?", "options": ["Yes", "No"]}

Optional: ``survey`` (default: the file name; name the survey of your training data, e.g.
``wvs``, to let a prior fitted on it use what it knows of that question), ``ordinal`` and
``language`` (``en``/``zh``). Columns may be separated by commas, semicolons or tabs. Each
question is checked like a survey item (2 to 26 distinct options, text limits).

The prediction table (:func:`write_table`) has one row per question, population and option:
``survey, question_id, question, population, population_kind, option, letter, share`` plus
the item's letter mass and the method and model that made it; ``.csv``, ``.jsonl`` or
``.parquet`` by extension.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surveytune.data.files import atomic_write_text
from surveytune.data.items import LETTERS, DataError, Source, SurveyItem, make_item
from surveytune.data.loaders import CSV_REQUIRED, _csv_bool, csv_delimiter, load_items
from surveytune.data.readers import PathLike, _iter_jsonl, _optional_str, _read_text, _require

__all__ = ["TABLE_FORMATS", "Question", "items_for", "load_questionnaire", "write_table"]

QUESTIONNAIRE_CSV = ("question_id", "question", "option")
TABLE_FORMATS = (".csv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Question:
    """One question to ask: its text and options, with where it was read."""

    survey: str
    question_id: str
    question: str
    options: tuple[str, ...]
    ordinal: bool = False
    language: str = "en"
    source: Source = Source()

    def item(self, population: str, population_kind: str = "country") -> SurveyItem:
        """The question put to one population. The distribution is the uniform placeholder a
        survey item needs; predicting never reads it."""
        k = len(self.options)
        return make_item(survey=self.survey, question_id=self.question_id,
                         question=self.question, options=list(self.options),
                         distribution=[1 / k] * k, population=population,
                         population_kind=population_kind, ordinal=self.ordinal,
                         language=self.language, source=self.source)


def _checked(question: Question) -> Question:
    question.item("-")  # the item checks: option count, distinct labels, text limits
    return question


def _from_items(items: Sequence[SurveyItem]) -> list[Question]:
    seen: dict[tuple[str, str], Question] = {}
    for item in items:
        seen.setdefault((item.survey, item.question_id), Question(
            item.survey, item.question_id, item.question, item.options, item.ordinal,
            item.language, item.source))
    return list(seen.values())


def _load_csv(path: Path) -> list[Question]:
    text = _read_text(path)
    if not text.strip():
        raise DataError("no questions in this file (it is empty)", file=path)
    header = text.split("\n", 1)[0]
    if all(name in header for name in CSV_REQUIRED[2:]):  # population, option, share: answers
        return _from_items(load_items(path, format="csv"))
    reader = csv.DictReader(io.StringIO(text, newline=""),
                            delimiter=csv_delimiter(text, path, QUESTIONNAIRE_CSV))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    previous_end = reader.line_num
    for row in reader:
        source = Source(str(path), previous_end + 1)
        previous_end = reader.line_num
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        for name in QUESTIONNAIRE_CSV:
            if not values.get(name):
                raise source.error("missing or empty", name)
        key = (values.get("survey") or path.stem, values["question_id"])
        entry = rows.setdefault(key, {"values": values, "source": source, "options": []})
        if values["question"] != entry["values"]["question"]:
            raise source.error(f"differs from line {entry['source'].line} for the same "
                               "question_id", "question")
        if values["option"] in entry["options"]:
            raise source.error(f"option {values['option']!r} repeated for this question",
                               "option")
        entry["options"].append(values["option"])
    return [_checked(Question(
        survey, question_id, e["values"]["question"], tuple(e["options"]),
        _csv_bool(e["values"].get("ordinal", ""), e["source"], "ordinal"),
        e["values"].get("language") or "en", e["source"]))
        for (survey, question_id), e in rows.items()]


def _load_jsonl(path: Path) -> list[Question]:
    questions, seen = [], {}
    for source, record in _iter_jsonl(path):
        if "distribution" in record:  # a survey file: its questions
            return _from_items(load_items(path, format="jsonl"))
        _require(record, ("question_id", "question", "options"), source)
        if not isinstance(record["options"], list):
            raise source.error("expected a list of option labels", "options")
        survey = _optional_str(record, "survey", path.stem, source)
        question = _checked(Question(
            survey, record["question_id"], record["question"],
            tuple(record["options"]), record.get("ordinal", False),  # make_item checks it
            _optional_str(record, "language", "en", source), source))
        key = (survey, question.question_id)
        if key in seen:
            raise source.error(f"question_id {question.question_id!r} repeated (first at line "
                               f"{seen[key]})", "question_id")
        seen[key] = source.line
        questions.append(question)
    return questions


def load_questionnaire(path: PathLike) -> list[Question]:
    """The questions of a questionnaire (or survey) file, in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise DataError(f"a questionnaire is .csv or .jsonl, not {suffix or 'no extension'!r}",
                        file=path)
    questions = _load_csv(path) if suffix == ".csv" else _load_jsonl(path)
    if not questions:
        raise DataError("no questions in this file", file=path)
    return questions


def items_for(questions: Sequence[Question], populations: Sequence[tuple[str, str]]
              ) -> list[SurveyItem]:
    """Every question put to every (population, kind), question by question (so the
    question-first prompt computes each question part once)."""
    return [question.item(name, kind) for question in questions for name, kind in populations]


def table_rows(items: Sequence[SurveyItem], distributions: Sequence[Sequence[float]],
               letter_mass: Sequence[float] | None = None, **constant: Any
               ) -> list[dict[str, Any]]:
    """The long-form rows of predicted ``distributions`` for ``items``, each with
    ``constant`` columns (method, model) and, when given, its item's ``letter_mass`` (the
    next-token probability the option letters got before renormalising)."""
    rows = []
    for number, (item, shares) in enumerate(zip(items, distributions, strict=True)):
        extra = {} if letter_mass is None else {"letter_mass": float(letter_mass[number])}
        for index, (option, share) in enumerate(zip(item.options, shares, strict=True)):
            rows.append({"survey": item.survey, "question_id": item.question_id,
                         "question": item.question, "population": item.population,
                         "population_kind": item.population_kind, "option": option,
                         "letter": LETTERS[index], "share": float(share), **extra, **constant})
    return rows


def write_table(frame: Any, path: PathLike) -> None:
    """Write a pandas DataFrame as CSV, JSONL or Parquet by ``path``'s extension; readers see
    the old file or the whole new one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, frame.to_csv(index=False))
    elif suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n"
                                        for record in frame.to_dict(orient="records")))
    elif suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401  (pandas writes Parquet through it)
        except ImportError:
            raise DataError("writing Parquet needs pyarrow: pip install "
                            "'surveytune[parquet]'", file=path) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            frame.to_parquet(partial, index=False)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    else:
        raise DataError(f"the table is written as {', '.join(TABLE_FORMATS)}; not "
                        f"{suffix or 'no extension'!r}", file=path)


def aligned_observations(observed: Sequence[SurveyItem], questions: Sequence[Question]
                         ) -> list[SurveyItem]:
    """Observed answers to a questionnaire's questions under the questionnaire's survey name
    (the two files name their survey after themselves); other observations as they are."""
    survey_of = {q.question_id: q.survey for q in questions}
    asked = {(q.survey, q.question_id) for q in questions}
    return [i.replace(survey=survey_of[i.question_id])
            if i.question_id in survey_of and (i.survey, i.question_id) not in asked else i
            for i in observed]
