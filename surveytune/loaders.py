"""Read survey answer distributions into :class:`~surveytune.items.SurveyItem` lists.

There is one loader per source format, and :func:`load_items` picks one for you. Every item is
built through :func:`~surveytune.items.make_item`, so all formats are checked by the same rules.
Bad input raises :class:`~surveytune.items.DataError` with the file, the line and the field. A
distribution whose sum is within ``SUM_TOLERANCE`` of 1 is renormalised, and one
:class:`~surveytune.items.DataWarning` per file reports it. (The loaders of the shared public
files renormalise rounding errors up to ``PUBLIC_ROUNDING_TOLERANCE`` silently.) Loaders never write
anything.

Bring your own survey
---------------------
Two generic formats are supported. Any survey, population and language can be used.

**JSONL** (``.jsonl``, :func:`load_jsonl`) has one JSON object per line. It is the canonical
format that :func:`surveytune.items.write_jsonl` writes, so such files round-trip::

    {"id": "mysurvey:q1:France", "survey": "mysurvey", "question_id": "q1",
     "question": "Do you trust your neighbours?", "options": ["Yes", "No"],
     "distribution": [0.62, 0.38], "population": "France", "population_kind": "country",
     "ordinal": false, "split": null, "language": "en"}

Required fields: ``question_id``, ``question``, ``options`` (a list of 2 to 26 labels in answer
order), ``distribution`` (a list aligned to ``options``; fractions summing to 1, or percentages
summing to 100) and ``population``. Optional fields: ``id`` (default
``"{survey}:{question_id}:{population}"``), ``survey`` (default: the file name without its
extension), ``population_kind`` (``"country"`` or ``"subgroup"``; default ``"country"``),
``ordinal`` (true when the options are an ordered scale; default false), ``split`` (default
null; else one of ``items.SPLITS``), ``language`` (``"en"`` or ``"zh"``; default ``"en"``) and
``scale_positions`` (the 0-based positions of the options that form the ordered scale ``emd``
runs over, when some options such as "Hard to say" are off it; default: all). Blank lines are
skipped, and unknown fields are ignored. ``question_id`` must be a JSON string and
probabilities JSON numbers (``"0.5"`` is refused). Option labels within an item must differ,
and one ``question_id`` must have the same question and options on every line. Texts over
``items.MAX_QUESTION_CHARS`` / ``MAX_OPTION_CHARS``, lone surrogates, invalid UTF-8 and files
without items are refused.

**CSV** (``.csv``, :func:`load_csv`) is a tidy long table with one row per (question,
population, option)::

    question_id,question,population,option,share
    q1,Do you trust your neighbours?,France,Yes,62
    q1,Do you trust your neighbours?,France,No,38

Required columns: ``question_id``, ``question``, ``population``, ``option`` and ``share``.
Optional columns: ``survey``, ``population_kind``, ``ordinal`` (true/false/1/0/yes/no),
``split`` and ``language``. The rows of one (question_id, population) pair form one item. The
options of a question keep the order of their first appearance in the file (for every
population of the question). Shares may be fractions or percentages; this
is decided per item by whether they sum to about 100. A bad share is reported at its own line;
a bad sum at the line of the item's first row.

Shared data files
-----------------
The project's public data files (see ``data/README.md``) have their own loaders:
:func:`load_wvs_unified`, :func:`load_paper_json`, :func:`load_goqa` and :func:`load_gss`.
:func:`find_data_file` maps short names to their standard paths.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from surveytune.items import (
    SUM_TOLERANCE,
    DataError,
    DataWarning,
    Source,
    SurveyItem,
    check_consistent_questions,
    check_unique_ids,
    make_item,
)

PathLike = str | os.PathLike

FORMATS = ("auto", "jsonl", "csv", "wvs-unified", "paper-json", "goqa", "gss")

DATA_FILES = {
    "wvs": "wvs7_unified/wvs7_country_distributions.jsonl",
    "goqa": "goqa_partial/goqa_union_question_country.jsonl",
    "gss": "subpop_eval_gss/subpop_eval.jsonl",
    "paper-valid": "wvs7_simllm_paper/sft_wvs_valid.json",
    "paper-valid-zh": "wvs7_simllm_paper/sft_wvs_zh_valid.json",
    "paper-pew": "wvs7_simllm_paper/global_pew_test.json",
}
"""Short names for the standard files in the shared data directory, relative to it."""

WVS_METADATA = "wvs7_codebook_worldvaluesbench/question_metadata.json"

# WVS questions missing from question_metadata.json whose codebook options are unordered
# choices (Q42 kinds of attitude, Q91-93 knowledge, Q152-157 aims); the others default to ordinal.
_WVS_NOMINAL_WITHOUT_METADATA = frozenset({42, 91, 92, 93, *range(152, 158)})

WVS_OFF_SCALE_CODE0 = frozenset({"hard to say", "it is against democracy (spontaneous)"})
"""Codebook labels of a WVS code 0 that is not a point of the question's ordered scale:
Q119's "Hard to say" (scale 1-4, strongly agree .. strongly disagree) and Q241-249's
spontaneous "It is against democracy" (scale 1-10). These are exactly the code-0 questions
whose WorldValuesBench metadata puts the scale's minimum at 1. Elsewhere code 0 is the scale's
first point (Q122-129 "0 = Disagree", Q94-105 "Don't belong")."""

_OPTION_PREFIX = re.compile(r"^\(([A-Z])\)\s*")
_PAPER_COUNTRY = (
    (re.compile(r"^\s*How would someone from (.+?) answer the following question"), "en"),
    (re.compile(r"^\s*来自(.+?)的人会如何回答以下问题"), "zh"),
)
_PAPER_INPUT_TAIL = re.compile(r"\s*(Here are the options:|以下是选项[：:])\s*$")
_REFUSAL_LIKE = re.compile(r"refus|don'?t know|no answer|skipped|not sure|\bna\b", re.IGNORECASE)


# --------------------------------------------------------------------------- shared helpers

def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", file=path) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"invalid UTF-8 (byte {data[exc.start]:#04x} at column {column})",
                        file=path, line=line) from None


def _json_error(exc: ValueError) -> str:
    """A one-line reason for a JSON text Python refuses (syntax, or a number too long)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return "invalid JSON: a number with too many digits"


def _iter_jsonl(path: Path) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Yield (source, record) for each non-blank line; refuse invalid JSON and non-objects."""
    # split on "\n" only: str.splitlines() would also split on U+2028 etc. inside strings
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        source = Source(str(path), number)
        try:
            record = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
            raise source.error(_json_error(exc)) from None
        if not isinstance(record, dict):
            raise source.error(f"expected a JSON object, got {type(record).__name__}")
        yield source, record


def _iter_json_list(path: Path) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Yield (source, record) for each object of a top-level JSON list, with its line number."""
    text = _read_text(path)
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")

    def fail(message: str, pos: int) -> DataError:
        return DataError(message, file=path, line=text.count("\n", 0, pos) + 1)

    pos = ws.match(text).end()
    if not text.startswith("[", pos):
        raise fail("expected a JSON list of records", pos)
    pos = ws.match(text, pos + 1).end()
    line, counted = 1, 0
    if text.startswith("]", pos):
        return
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc.msg}", exc.pos) from None
        except ValueError:  # an integer of thousands of digits
            raise fail("invalid JSON: a number with too many digits", pos) from None
        line += text.count("\n", counted, pos)
        counted = pos
        source = Source(str(path), line)
        if not isinstance(record, dict):
            raise source.error(f"expected a JSON object, got {type(record).__name__}")
        yield source, record
        pos = ws.match(text, end).end()
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise fail("invalid JSON: expected ',' or ']'", pos)
        pos = ws.match(text, pos + 1).end()


def _require(record: dict[str, Any], names: Sequence[str], source: Source) -> None:
    for name in names:
        if record.get(name) is None:
            raise source.error("missing", name)


def _optional_str(record: dict[str, Any], name: str, default: str | None,
                  source: Source) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise source.error(f"expected a string, got {value!r}", name)
    return value


def _sum_or_none(values: Any) -> float | None:
    """The sum of a list of numbers, or None when it is not one (make_item then says why)."""
    try:
        return sum(float(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        return None


def _scale_of(values: Any) -> float:
    """100 when the values look like percentages (sum about 100), else 1."""
    total = _sum_or_none(values)
    if total is not None and abs(total - 100.0) <= 100.0 * SUM_TOLERANCE:
        return 100.0
    return 1.0


PUBLIC_ROUNDING_TOLERANCE = 0.005
"""The public files round their shares; sums this close to 1 are renormalised silently."""


def _bad_sum(values: Any) -> bool:
    """True for a list of non-negative numbers whose sum is too far from 1 to be repaired."""
    total = _sum_or_none(values)
    return (total is not None and all(float(v) >= 0 for v in values)
            and abs(total - 1.0) > SUM_TOLERANCE)


@contextmanager
def _one_repair_warning(path: Path) -> Iterator[None]:
    """Gather the per-item renormalisation warnings of one file into one DataWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    repairs = [w for w in caught if issubclass(w.category, DataWarning)]
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(repairs) == 1:
        warnings.warn(str(repairs[0].message), DataWarning, stacklevel=3)
    elif repairs:
        warnings.warn(f"{path}: {len(repairs)} distributions renormalised (each within "
                      f"{SUM_TOLERANCE:g} of 1); first: {repairs[0].message}",
                      DataWarning, stacklevel=3)


def _text_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:10]


# --------------------------------------------------------------------------- WVS (unified file)

def _wvs_ordinal_map(path: Path) -> dict[str, bool] | None:
    metadata = path.resolve().parent.parent / WVS_METADATA
    if not metadata.is_file():
        return None
    try:
        data = json.loads(_read_text(metadata))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=metadata, line=exc.lineno) from None
    return {key: value.get("answer_data_type") == "ordinal" for key, value in data.items()
            if isinstance(value, dict)}


def _wvs_ordinal(ordinal_map: dict[str, bool] | None, qid: int) -> bool:
    """Whether WVS question ``qid`` is ordinal: from the metadata if there is any, else True."""
    if ordinal_map is None:
        return True
    return ordinal_map.get(f"Q{qid}", qid not in _WVS_NOMINAL_WITHOUT_METADATA)


def load_wvs_unified(path: PathLike) -> list[SurveyItem]:
    """Load ``wvs7_unified/wvs7_country_distributions.jsonl``: one item per (country, WVS Q).

    Options are the paper's option strings (without "(A)") where known, else the codebook
    labels, in code order (code 0, the paper's letter X, first; we letter by position, so it
    becomes A). ``ordinal`` comes from the WVS question metadata next to the data directory
    when it exists. A code 0 in :data:`WVS_OFF_SCALE_CODE0` is left out of the item's
    ``scale_positions`` (its ordered scale, used by ``emd``). All rows are kept with ``split=None``;
    :mod:`surveytune.splits` assigns the paper's splits.
    """
    path = Path(path)
    ordinal_map = _wvs_ordinal_map(path)
    items = []
    with _one_repair_warning(path):
        for source, row in _iter_jsonl(path):
            _require(row, ("country", "qid", "options", "dist"), source)
            qid, options, dist = row["qid"], row["options"], row["dist"]
            if isinstance(qid, bool) or not isinstance(qid, int):
                raise source.error(f"expected a WVS question number, got {qid!r}", "qid")
            if not isinstance(options, list) or not all(
                    isinstance(o, dict) and "letter" in o and "label" in o for o in options):
                raise source.error("expected a list of {code, letter, label}", "options")
            if not isinstance(dist, dict):
                raise source.error("expected a {letter: fraction} object", "dist")
            letters = [o["letter"] for o in options]
            if set(dist) != set(letters):
                raise source.error(f"letters {sorted(dist)} do not match the options' "
                                   f"letters {letters}", "dist")
            labels = [o["label"] for o in options]
            paper_options = row.get("paper_options")
            if paper_options:
                if len(paper_options) != len(options):
                    raise source.error(f"{len(paper_options)} labels for {len(options)} options",
                                       "paper_options")
                labels = [_OPTION_PREFIX.sub("", str(o)) for o in paper_options]
            question = row.get("question_text") or row.get("codebook_label")
            scale = [i for i, o in enumerate(options) if not (
                o.get("code") == 0 and str(o["label"]).strip().lower() in WVS_OFF_SCALE_CODE0)]
            key = f"Q{qid}"
            ordinal = _wvs_ordinal(ordinal_map, qid)
            items.append(make_item(
                survey="wvs7", question_id=key, question=question, options=labels,
                distribution=[dist[letter] for letter in letters],
                rounding_tolerance=PUBLIC_ROUNDING_TOLERANCE,
                population=row["country"],
                population_kind="country", ordinal=ordinal, source=source,
                distribution_field="dist", scale_positions=scale))
    return items


def wvs_paper_split_labels(path: PathLike) -> dict[str, tuple[str, ...]]:
    """The unified WVS file's own ``paper_splits`` labels, by item id (for verification)."""
    path = Path(path)
    labels = {}
    for source, row in _iter_jsonl(path):
        _require(row, ("country", "qid"), source)
        labels[f"wvs7:Q{row['qid']}:{row['country']}"] = tuple(row.get("paper_splits") or ())
    return labels


# --------------------------------------------------------------------------- the paper's JSON

def _paper_population(instruction: Any, source: Source) -> tuple[str, str]:
    if isinstance(instruction, str):
        for pattern, language in _PAPER_COUNTRY:
            match = pattern.match(instruction)
            if match and match.group(1).strip():
                return match.group(1).strip(), language
    raise source.error(f"cannot find the country in {str(instruction)[:60]!r}", "instruction")


def load_paper_json(path: PathLike, *, survey: str | None = None,
                    skip_bad_sums: bool | None = None) -> list[SurveyItem]:
    """Load one of the paper's JSON lists (``sft_wvs_valid.json``, ``global_pew_test.json``...).

    The country comes from ``instruction`` (English or Chinese prompt; Chinese gives
    ``language="zh"``). The question is ``input`` without its "Here are the options" tail.
    ``options_dist`` is read as percentages when it sums to about 100. ``survey`` defaults to
    "goqa" for files whose name contains "pew" and to "wvs7" otherwise; WVS question ids become
    ``Q<id>`` and ``ordinal`` comes from the WVS metadata as in :func:`load_wvs_unified`.
    ``skip_bad_sums`` (default: only for "goqa") skips rows whose distribution sums
    far from 1, with one DataWarning: ``global_pew_test.json`` has 9 such rows (question 2446).
    Note that ``global_pew_test.json`` also holds 1,446 WVS-sourced rows.
    """
    path = Path(path)
    if survey is None:
        survey = "goqa" if "pew" in path.name.lower() else "wvs7"
    if skip_bad_sums is None:
        skip_bad_sums = survey == "goqa"
    ordinal_map = _wvs_ordinal_map(path) if survey == "wvs7" else None
    rows = list(_iter_json_list(path))
    texts: dict[str, set[str]] = {}
    for source, row in rows:
        _require(row, ("id", "instruction", "input", "options", "options_dist"), source)
        texts.setdefault(str(row["id"]), set()).add(str(row["input"]))
    # Question ids that name several different questions are replaced by a text hash.
    ids_ambiguous = any(len(t) > 1 for t in texts.values())
    items, skipped = [], 0
    with _one_repair_warning(path):
        for source, row in rows:
            population, language = _paper_population(row["instruction"], source)
            question = row["input"]
            if not isinstance(question, str):
                raise source.error(f"expected a string, got {question!r}", "input")
            question = _PAPER_INPUT_TAIL.sub("", question)
            options, dist = row["options"], row["options_dist"]
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise source.error("expected a list of option strings", "options")
            if not isinstance(dist, dict):
                raise source.error("expected a {letter: share} object", "options_dist")
            letters = []
            for i, option in enumerate(options):
                match = _OPTION_PREFIX.match(option)
                letters.append(match.group(1) if match else chr(ord("A") + i))
            if set(dist) != set(letters):
                raise source.error(f"letters {sorted(dist)} do not match the options' "
                                   f"letters {letters}", "options_dist")
            values = [dist[letter] for letter in letters]
            scale = _scale_of(values)
            if skip_bad_sums and scale == 1.0 and _bad_sum(values):
                skipped += 1
                continue
            ordinal = False
            if survey == "wvs7":
                question_id = f"Q{row['id']}"
                qid = str(row["id"]).strip()
                if not qid.isdigit():
                    raise source.error(f"expected a WVS question number, got {row['id']!r}", "id")
                ordinal = _wvs_ordinal(ordinal_map, int(qid))
            elif ids_ambiguous:
                question_id = f"{survey}-{_text_hash(question)}"
            else:
                question_id = str(row["id"])
            items.append(make_item(
                survey=survey, question_id=question_id, question=question,
                options=[_OPTION_PREFIX.sub("", o) for o in options],
                distribution=values, rounding_tolerance=PUBLIC_ROUNDING_TOLERANCE,
                population=population, population_kind="country", ordinal=ordinal,
                language=language, source=source, scale=scale, distribution_field="options_dist",
                allow_duplicate_options=survey == "goqa"))  # Pew labels split on commas
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} rows whose options_dist sums far from 1 "
                      "(a known defect of this public file)", DataWarning, stacklevel=2)
    return items


# --------------------------------------------------------------------------- GlobalOpinionQA

# Labels of the WVS codebook's negative (missing) codes: -1 "Don't know", -2 "No answer" (also
# "No answer/ refused"), -3 "Not applicable", -4 "Not asked", -5 "Missing; ..." / "Other
# missing; ..." / "INAP: ...". GlobalOpinionQA copies them as options of its WVS rows. Its Pew
# (GAS) rows fold refusals into one "DK/Refused" (or "Don't know/Refused") option instead, so a
# standalone missing-code label marks a WVS question.
WVS_MISSING_LABELS = frozenset({"don't know", "dont know", "no answer", "no answer/refused",
                                "not applicable", "not asked", "missing"})
WVS_MISSING_PREFIXES = ("missing;", "missing,", "other missing", "inap", "not asked",
                        "not applicable")


def is_wvs_missing_label(label: str) -> bool:
    """Whether an option label is a WVS missing-code label (``"No answer"``, ``'"Dont know"'``,
    ``"Missing; Not available"``...), not a Pew-style ``"DK/Refused"``."""
    text = label.strip().strip('"').replace("\u00b4", "'").replace("\u2019", "'")
    text = " ".join(text.replace("/ ", "/").lower().split())
    return text in WVS_MISSING_LABELS or text.startswith(WVS_MISSING_PREFIXES)


def load_goqa(path: PathLike, drop_wvs: bool = True) -> list[SurveyItem]:
    """Load ``goqa_partial/goqa_union_question_country.jsonl`` (GlobalOpinionQA).

    ``drop_wvs`` removes the WVS-sourced rows, which must not be used as an unseen survey:
    those with ``survey_guess == "WVS"`` and those whose options include a WVS missing-code
    label (:func:`is_wvs_missing_label`; 79 rows of 47 questions labelled "GAS(Pew)" in the
    public file, e.g. WVS's confidence-in-organisations battery for Egypt, Jordan, Morocco
    and Tunisia). ``question_id`` is ``goqa-`` plus a hash of the
    whitespace-normalised question text and its option list (some questions were asked with
    different option lists in different countries; those are different questions). Rows
    whose ``dist`` sums far from 1 (19 rows in the public file) are a known defect of this
    dataset: they are skipped with one DataWarning.
    """
    path = Path(path)
    items, skipped = [], 0
    with _one_repair_warning(path):
        for source, row in _iter_jsonl(path):
            _require(row, ("question", "country", "options", "dist"), source)
            if drop_wvs and (row.get("survey_guess") == "WVS" or (
                    isinstance(row["options"], list)
                    and any(isinstance(o, str) and is_wvs_missing_label(o)
                            for o in row["options"]))):
                continue
            if isinstance(row["dist"], list) and _bad_sum(row["dist"]):
                skipped += 1
                continue
            question = row["question"]
            if not isinstance(question, str):
                raise source.error(f"expected a string, got {question!r}", "question")
            key = "\n".join([question, *map(str, row["options"])])
            items.append(make_item(
                survey="goqa", question=question, question_id=f"goqa-{_text_hash(key)}",
                options=row["options"], distribution=row["dist"],
                rounding_tolerance=PUBLIC_ROUNDING_TOLERANCE,
                population=row["country"],
                population_kind="country", ordinal=False, source=source,
                distribution_field="dist", allow_duplicate_options=True))
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} rows whose dist sums far from 1 "
                      "(a known defect of this public dataset)", DataWarning, stacklevel=2)
    return items


# --------------------------------------------------------------------------- GSS (SubPOP-Eval)

def _strictly_monotone(values: Any) -> bool:
    if not isinstance(values, list) or len(values) < 2:
        return False
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return False
    pairs = list(itertools.pairwise(values))
    return all(a < b for a, b in pairs) or all(a > b for a, b in pairs)


def load_gss(path: PathLike) -> list[SurveyItem]:
    """Load ``subpop_eval_gss/subpop_eval.jsonl`` (GSS 2022, US subgroups).

    The population is ``"ATTRIBUTE: group"`` (e.g. ``"POLPARTY: Democrat"``). The options are
    the first ``len(responses)`` options; any options after them must be refusal-like (the
    trailing "Refused" has no share). ``ordinal`` is true when the ``ordinal`` codes are
    strictly monotone.
    """
    path = Path(path)
    items = []
    with _one_repair_warning(path):
        for source, row in _iter_jsonl(path):
            _require(row, ("qkey", "attribute", "group", "question", "options", "responses"),
                     source)
            options, responses = row["options"], row["responses"]
            if not isinstance(options, list):
                raise source.error("expected a list of option labels", "options")
            if not isinstance(responses, list):
                raise source.error("expected a list of shares", "responses")
            extra = options[len(responses):]
            for label in extra:
                if not isinstance(label, str) or not _REFUSAL_LIKE.search(label):
                    raise source.error(f"option {label!r} has no share in 'responses' and is "
                                       "not a refusal", "options")
            items.append(make_item(
                survey="gss2022", question_id=row["qkey"], question=row["question"],
                options=options[:len(responses)], distribution=responses,
                rounding_tolerance=PUBLIC_ROUNDING_TOLERANCE,
                population=f"{row['attribute']}: {row['group']}", population_kind="subgroup",
                ordinal=_strictly_monotone(row.get("ordinal")), source=source,
                distribution_field="responses"))
    return items


# --------------------------------------------------------------------------- generic formats

def load_jsonl(path: PathLike) -> list[SurveyItem]:
    """Load the generic/canonical JSONL format (see the module docstring)."""
    path = Path(path)
    items = []
    with _one_repair_warning(path):
        for source, record in _iter_jsonl(path):
            _require(record, ("question_id", "question", "options", "distribution",
                              "population"), source)
            dist = record["distribution"]
            ident = record.get("id")
            if ident is not None and (not isinstance(ident, str) or not ident.strip()):
                raise source.error(f"expected a non-empty string, got {ident!r}", "id")
            items.append(make_item(
                survey=_optional_str(record, "survey", path.stem, source),
                question_id=record["question_id"], question=record["question"],
                options=record["options"], distribution=dist, population=record["population"],
                population_kind=_optional_str(record, "population_kind", "country", source),
                ordinal=record.get("ordinal", False),
                split=_optional_str(record, "split", None, source),
                language=_optional_str(record, "language", "en", source),
                id=ident, source=source, scale=_scale_of(dist),
                scale_positions=record.get("scale_positions")))
    return items


CSV_REQUIRED = ("question_id", "question", "population", "option", "share")
CSV_OPTIONAL = ("survey", "population_kind", "ordinal", "split", "language")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _csv_bool(value: str, source: Source, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise source.error(f"expected true or false, got {value!r}", name)


def _csv_share(value: str, source: Source) -> float:
    """One row's share, checked on its own line (sums are checked per item)."""
    if not value:
        raise source.error("missing or empty", "share")
    try:
        share = float(value)
    except ValueError:
        raise source.error(f"expected a number, got {value!r}", "share") from None
    if share != share or share == float("inf"):
        raise source.error(f"share is {value!r}", "share")
    if share < 0:
        raise source.error(f"negative share {value}", "share")
    return share


def load_csv(path: PathLike) -> list[SurveyItem]:
    """Load the generic tidy CSV format (see the module docstring)."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise DataError("no items in this file (it is empty)", file=path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    header_source = Source(str(path), 1)
    for name in CSV_REQUIRED:
        if name not in header:
            raise header_source.error(f"missing column (columns: {', '.join(header)})", name)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    order: dict[tuple[str, str], list[str]] = {}  # each question's options, first seen first
    previous_end = reader.line_num
    try:
        for row in reader:
            source = Source(str(path), previous_end + 1)
            previous_end = reader.line_num
            if None in row:
                raise source.error(f"{len(header) + len(row[None])} cells for "
                                   f"{len(header)} columns")
            values = {k: (v or "").strip() for k, v in row.items()}
            for name in CSV_REQUIRED:
                if name != "share" and not values[name]:
                    raise source.error("missing or empty", name)
            key = (values["question_id"], values["population"])
            group = groups.get(key)
            if group is None:
                groups[key] = group = {"source": source, "row": values, "options": [],
                                       "shares": []}
            else:
                for name in ("question", *CSV_OPTIONAL):
                    if name in values and values[name] != group["row"].get(name, ""):
                        raise source.error(
                            f"{values[name]!r} differs from {group['row'][name]!r} on line "
                            f"{group['source'].line} for the same question and population",
                            name)
                if values["option"] in group["options"]:
                    raise source.error(f"option {values['option']!r} repeated for this "
                                       "question and population", "option")
            group["options"].append(values["option"])
            group["shares"].append(_csv_share(values["share"], source))
            labels = order.setdefault((values.get("survey", ""), values["question_id"]), [])
            if values["option"] not in labels:
                labels.append(values["option"])
    except csv.Error as exc:
        raise DataError(f"invalid CSV: {exc}", file=path, line=reader.line_num) from None
    items = []
    with _one_repair_warning(path):
        for group in groups.values():
            values, source = group["row"], group["source"]
            shares = group["shares"]
            labels = order[(values.get("survey", ""), values["question_id"])]
            if len(labels) == len(group["options"]):  # the same labels: the question's order
                share_of = dict(zip(group["options"], shares))
                group["options"], shares = labels, [share_of[label] for label in labels]
            items.append(make_item(
                survey=values.get("survey") or path.stem, question_id=values["question_id"],
                question=values["question"], options=group["options"], distribution=shares,
                population=values["population"],
                population_kind=values.get("population_kind") or "country",
                ordinal=_csv_bool(values.get("ordinal", ""), source, "ordinal"),
                split=values.get("split") or None, language=values.get("language") or "en",
                source=source, scale=_scale_of(shares), distribution_field="share"))
    return items


# --------------------------------------------------------------------------- dispatch

_LOADERS: dict[str, Callable[..., list[SurveyItem]]] = {
    "jsonl": load_jsonl,
    "csv": load_csv,
    "wvs-unified": load_wvs_unified,
    "paper-json": load_paper_json,
    "goqa": load_goqa,
    "gss": load_gss,
}


def detect_format(path: PathLike) -> str:
    """Guess a file's format from its extension and first record (see :func:`load_items`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "paper-json"
    if suffix == ".jsonl":
        for _, record in _iter_jsonl(path):
            if "paper_splits" in record:
                return "wvs-unified"
            if "survey_guess" in record:
                return "goqa"
            if "qkey" in record:
                return "gss"
            break
        return "jsonl"
    if not path.exists():
        raise DataError("file not found", file=path)
    raise DataError(f"cannot tell the format from the extension {suffix!r}; pass one of "
                    f"{', '.join(FORMATS[1:])}", file=path)


def load_items(path: PathLike, format: str = "auto", **kwargs: Any) -> list[SurveyItem]:
    """Load items from ``path`` in ``format`` (one of :data:`FORMATS`; "auto" sniffs).

    "auto" picks csv for ``.csv``, paper-json for ``.json``, and for ``.jsonl`` wvs-unified,
    goqa or gss when the first record has ``paper_splits``, ``survey_guess`` or ``qkey``, else
    the generic jsonl. Extra keyword arguments go to the loader. A file without items, duplicate
    ids, and one question id with different texts or options on two lines are refused.
    """
    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; known: {', '.join(FORMATS)}", file=path)
    if not path.exists():
        raise DataError("file not found", file=path)
    if format == "auto":
        format = detect_format(path)
    items = _LOADERS[format](path, **kwargs)
    if not items:
        raise DataError("no items in this file", file=path)
    check_unique_ids(items)
    check_consistent_questions(items)
    return items


def find_data_file(data_dir: PathLike, name: str) -> Path:
    """The standard path of a shared data file by short name (see :data:`DATA_FILES`)."""
    if name not in DATA_FILES:
        raise DataError(f"unknown data file {name!r}; known: {', '.join(DATA_FILES)}",
                        file=data_dir)
    path = Path(data_dir) / DATA_FILES[name]
    if not path.is_file():
        raise DataError(f"expected the {name!r} data file here, but it is missing", file=path)
    return path
