"""Read survey answer distributions into :class:`~surveytune.data.items.SurveyItem` lists.

There is one loader per source format, and :func:`load_items` picks one for you. Every item is
built through :func:`~surveytune.data.items.make_item`, so all formats are checked by the same
rules.
Bad input raises :class:`~surveytune.data.items.DataError` with the file, the line and the field. A
distribution whose sum is within ``SUM_TOLERANCE`` of 1 is renormalised, and one
:class:`~surveytune.data.items.DataWarning` per file reports it. (The loaders of the shared public
files renormalise rounding errors up to ``PUBLIC_ROUNDING_TOLERANCE`` silently.) Loaders never write
anything.

Bring your own survey
---------------------
Two generic formats are supported. Any survey, population and language can be used.

**JSONL** (``.jsonl``, :func:`load_jsonl`) has one JSON object per line. It is the canonical
format that :func:`surveytune.data.files.write_jsonl` writes, so such files round-trip::

    {"id": "mysurvey:q1:France", "survey": "mysurvey", "question_id": "q1",
     "question": "Do you trust your neighbours?", "options": ["Yes", "No"],
     "distribution": [0.62, 0.38], "population": "France", "population_kind": "country",
     "ordinal": false, "split": null, "language": "en"}

Required fields: ``question_id``, ``question``, ``options`` (a list of 2 to 26 labels in answer
order), ``distribution`` (a list aligned to ``options``; fractions summing to 1, or percentages
summing to 100) and ``population``. Optional fields: ``id`` (default
``"{survey}:{question_id}:{population}"``), ``survey`` (default: the file name without its
extension), ``population_kind`` (``"country"``, ``"subgroup"`` or ``"custom"``; default
``"country"``; see below),
``ordinal`` (true when the options are an ordered scale; default false), ``split`` (default
null; else one of ``items.SPLITS``), ``language`` (``"en"`` or ``"zh"``; default ``"en"``) and
``scale_positions`` (the 0-based positions of the options that form the ordered scale ``emd``
runs over, when some options such as "Hard to say" are off it; default: all). Blank lines are
skipped, and unknown fields are ignored. ``question_id`` must be a JSON string and
probabilities JSON numbers (``"0.5"`` is refused). Option labels within an item must differ,
unless the record says ``"repeated_options": true`` (what :func:`write_jsonl` writes for the
public GOQA rows whose Pew labels repeat, so they load back), and one ``question_id`` must have
the same question and options on every line. Texts over
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
population of the question). Columns may be separated by commas, semicolons or tabs (found
from the header; with semicolons or tabs a share may use a decimal comma). Every population of a
question needs a row for each of the question's options: the population whose set differs from
most of the others' is refused at its first row (a missing option) or at the extra row.
Shares may be fractions or percentages, in both formats; this is decided per item (a sum above 2
is read as percentages). A bad share is reported at its own line; a bad sum at the line of the
item's first row.

Populations
-----------
:func:`load_items` checks every population against the vocabulary of
:mod:`surveytune.data.populations` (countries that ``country_converter`` knows, the GSS
subgroups ``"ATTRIBUTE: group"``) and of its ``population_kind``, and refuses an unknown one at
its line with the nearest known names. Populations of kind ``"custom"`` are not checked, and
``allow_unknown_populations=True`` keeps unknown ones with one DataWarning per file. Population
strings are kept as written.

Shared data files
-----------------
The project's public data files (see ``data/README.md``) have their own loaders:
:func:`load_wvs_unified`, :func:`load_paper_json`, :func:`load_goqa` and :func:`load_gss`.
:func:`find_data_file` maps short names to their standard paths.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from surveytune.data.items import (
    DataError,
    DataWarning,
    Source,
    SurveyItem,
    check_consistent_questions,
    check_unique_ids,
    make_item,
    odd_option_list,
)
from surveytune.data.populations import UnknownPopulation, resolve_population
from surveytune.data.public_data import (
    DATA_FILES,
    WVS_MISSING_LABELS,
    WVS_OFF_SCALE_CODE0,
    find_data_file,
    is_wvs_missing_label,
    load_goqa,
    load_gss,
    load_paper_json,
    load_wvs_unified,
    wvs_paper_split_labels,
)
from surveytune.data.readers import (
    PUBLIC_ROUNDING_TOLERANCE,
    PathLike,
    _iter_jsonl,
    _one_repair_warning,
    _optional_str,
    _read_text,
    _require,
    _scale_of,
)

__all__ = ["DATA_FILES", "FORMATS", "PUBLIC_ROUNDING_TOLERANCE", "WVS_MISSING_LABELS",
           "WVS_OFF_SCALE_CODE0", "check_populations", "detect_format", "find_data_file",
           "is_wvs_missing_label", "load_csv", "load_goqa", "load_gss", "load_items", "load_jsonl",
           "load_paper_json", "load_wvs_unified", "wvs_paper_split_labels"]

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
                allow_duplicate_options=record.get("repeated_options") is True,
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


def _csv_share(value: str, source: Source, decimal_comma: bool = False) -> float:
    """One row's share, checked on its own line (sums are checked per item)."""
    if not value:
        raise source.error("missing or empty", "share")
    try:
        share = float(value.replace(",", ".") if decimal_comma else value)
    except ValueError:
        raise source.error(f"expected a number, got {value!r}", "share") from None
    if share != share or share == float("inf"):
        raise source.error(f"share is {value!r}", "share")
    if share < 0:
        raise source.error(f"negative share {value}", "share")
    return share


CSV_DELIMITERS = (",", ";", "\t")
"""Tried in this order: the first that splits the header into every required column wins
(spreadsheets in many locales export ``;``; their shares may then use a decimal comma)."""


def csv_delimiter(text: str, path: Path, required: Sequence[str] = CSV_REQUIRED) -> str:
    """The delimiter of a CSV text: the first of :data:`CSV_DELIMITERS` that splits its header
    into every ``required`` column; else a one-line refusal naming a missing column."""
    header = text.split("\n", 1)[0]
    for delimiter in CSV_DELIMITERS:
        names = {name.strip() for name in next(csv.reader([header], delimiter=delimiter))}
        if all(name in names for name in required):
            return delimiter
    columns = next(csv.reader([header]))
    missing = next(name for name in required if name not in {c.strip() for c in columns})
    raise Source(str(path), 1).error(
        f"missing column (columns: {', '.join(columns)}; the header must name "
        f"{', '.join(required)}, separated by commas, semicolons or tabs)", missing)


def _csv_groups(path: Path, text: str) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """The rows of each (question_id, population), with each row's source, and the
    delimiter."""
    delimiter = csv_delimiter(text, path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    groups: dict[tuple[str, str], dict[str, Any]] = {}
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
                                       "shares": [], "rows": {}}
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
            group["rows"][values["option"]] = source
            group["shares"].append(_csv_share(values["share"], source, delimiter != ","))
    except csv.Error as exc:
        raise DataError(f"invalid CSV: {exc}", file=path, line=reader.line_num) from None
    return groups, delimiter


def _check_csv_options(groups: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Every population of a question has a row for each of its options (the odd one out is
    blamed, :func:`~surveytune.data.items.odd_option_list`); the options then take the
    question's order, that of their first appearance in the file."""
    by_question: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for group in groups.values():
        key = (group["row"].get("survey", ""), group["row"]["question_id"])
        by_question.setdefault(key, []).append(group)
    for (_, question_id), members in by_question.items():
        order = {label: i for i, label in enumerate(dict.fromkeys(
            label for g in members for label in g["options"]))}
        for group in members:
            pairs = sorted(zip(group["options"], group["shares"]), key=lambda p: order[p[0]])
            group["options"], group["shares"] = [p[0] for p in pairs], [p[1] for p in pairs]
        error = odd_option_list(
            question_id, [(g["row"]["population"], g["options"], g["source"]) for g in members],
            noun="row for option", row_sources=[g["rows"] for g in members])
        if error is not None:
            raise error


def load_csv(path: PathLike) -> list[SurveyItem]:
    """Load the generic tidy CSV format (see the module docstring)."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise DataError("no items in this file (it is empty)", file=path)
    groups, _ = _csv_groups(path, text)
    _check_csv_options(groups)
    items = []
    with _one_repair_warning(path):
        for group in groups.values():
            values, source = group["row"], group["source"]
            shares, unit = group["shares"], _scale_of(group["shares"])
            try:
                items.append(make_item(
                    survey=values.get("survey") or path.stem, question_id=values["question_id"],
                    question=values["question"], options=group["options"], distribution=shares,
                    population=values["population"],
                    population_kind=values.get("population_kind") or "country",
                    ordinal=_csv_bool(values.get("ordinal", ""), source, "ordinal"),
                    split=values.get("split") or None, language=values.get("language") or "en",
                    source=source, scale=unit, distribution_field="share"))
            except DataError as exc:
                if exc.field != "share" or sum(shares) >= unit:
                    raise
                raise source.error(f"{exc.message}; this question and population have rows "
                                   f"for {', '.join(group['options'])}: is a row missing?",
                                   "share") from None
    return items


# --------------------------------------------------------------------------- dispatch

LOADERS: dict[str, Callable[..., list[SurveyItem]]] = {
    "jsonl": load_jsonl,
    "csv": load_csv,
    "wvs-unified": load_wvs_unified,
    "paper-json": load_paper_json,
    "goqa": load_goqa,
    "subpop-gss": load_gss,
}
"""The data formats by name: adding one is a loader ``load(path) -> list[SurveyItem]`` that
builds its items with ``make_item`` and one line here (``--format NAME``), plus a rule in
:func:`detect_format` if "auto" should recognise it."""

FORMATS = ("auto", *LOADERS)
"""The ``--format`` values of the built-in formats."""


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
                return "subpop-gss"
            break
        return "jsonl"
    if not path.exists():
        raise DataError("file not found", file=path)
    raise DataError(f"cannot tell the format from the extension {suffix!r}; pass one of "
                    f"{', '.join(LOADERS)}", file=path)


# Where each format keeps an item's population, for the refusal of an unknown one.
_POPULATION_FIELDS = {"wvs-unified": "country", "goqa": "country", "paper-json": "instruction",
                      "subpop-gss": "group"}


def check_populations(items: Sequence[SurveyItem], *, field: str = "population",
                      allow_unknown: bool = False, custom_kind: bool = True) -> None:
    """Refuse the first item whose population the vocabulary does not know, or knows as
    another kind (:func:`~surveytune.data.populations.resolve_population`), at its line and
    ``field``, with the nearest known names. Custom populations are not checked; with
    ``allow_unknown`` unknown ones are kept, with one DataWarning per file naming them.
    ``custom_kind``: whether the format has a ``population_kind`` (the refusal says so)."""
    accepts = ('population_kind "custom" or --allow-unknown-populations' if custom_kind
               else "--allow-unknown-populations")
    checked: set[tuple[str, str]] = set()
    unknown: dict[str, list[str]] = {}  # file -> unknown names, first seen first
    for item in items:
        key = (item.population, item.population_kind)
        if item.population_kind == "custom" or key in checked:
            continue
        checked.add(key)
        try:
            resolve_population(item.population, kind=item.population_kind)
        except UnknownPopulation as exc:
            if not allow_unknown:
                raise item.source.error(f"{exc.message} ({accepts} accepts it)",
                                        field) from None
            unknown.setdefault(item.source.file or "<input>", []).append(item.population)
        except DataError as exc:
            raise item.source.error(f"{exc.message}; fix its population_kind", field) from None
    for file, names in unknown.items():
        shown = ", ".join(repr(name) for name in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        warnings.warn(f"{file}: {len(names)} unknown population(s) simulated as written: "
                      f"{shown}{more}", DataWarning, stacklevel=3)


def load_items(path: PathLike, format: str = "auto", *, allow_unknown_populations: bool = False,
               **kwargs: Any) -> list[SurveyItem]:
    """Load items from ``path`` in ``format`` (one of :data:`FORMATS`; "auto" sniffs).

    "auto" picks csv for ``.csv``, paper-json for ``.json``, and for ``.jsonl`` wvs-unified,
    goqa or gss when the first record has ``paper_splits``, ``survey_guess`` or ``qkey``, else
    the generic jsonl. Extra keyword arguments go to the loader. A file without items, duplicate
    ids, one question id with different texts or options on two lines, and populations outside
    the vocabulary (:func:`check_populations`; allowed with ``allow_unknown_populations``) are
    refused.
    """
    path = Path(path)
    if format != "auto" and format not in LOADERS:
        raise DataError(f"unknown format {format!r}; known: auto, {', '.join(LOADERS)}",
                        file=path)
    if not path.exists():
        raise DataError("file not found", file=path)
    if format == "auto":
        format = detect_format(path)
    items = LOADERS[format](path, **kwargs)
    if not items:
        raise DataError("no items in this file", file=path)
    check_unique_ids(items)
    check_consistent_questions(items)
    check_populations(items, field=_POPULATION_FIELDS.get(format, "population"),
                      allow_unknown=allow_unknown_populations,
                      custom_kind=format not in _POPULATION_FIELDS)
    return items
