"""Loaders of the project's shared public data files (see ``data/README.md``): the unified
WVS-7 file, the paper's JSON files (English, Chinese, Pew), GlobalOpinionQA and SubPOP's GSS
file, and :func:`find_data_file`, which maps short names to their standard paths. Every item
is built through :func:`~surveytune.data.items.make_item`, like the generic formats'."""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any

from surveytune.data.items import (
    DataError,
    DataWarning,
    Source,
    SurveyItem,
    make_item,
)
from surveytune.data.readers import (
    PUBLIC_ROUNDING_TOLERANCE,
    PathLike,
    _bad_sum,
    _iter_json_list,
    _iter_jsonl,
    _one_repair_warning,
    _read_text,
    _require,
    _scale_of,
    _text_hash,
)

DATA_FILES = {
    "wvs-unified": "wvs7_unified/wvs7_country_distributions.jsonl",
    "goqa": "goqa_partial/goqa_union_question_country.jsonl",
    "subpop-gss": "subpop_eval_gss/subpop_eval.jsonl",
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
    :mod:`surveytune.data.splits` assigns the paper's splits.
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


def find_data_file(data_dir: PathLike, name: str) -> Path:
    """The standard path of a shared data file by short name (see :data:`DATA_FILES`)."""
    if name not in DATA_FILES:
        raise DataError(f"unknown data file {name!r}; known: {', '.join(DATA_FILES)}",
                        file=data_dir)
    path = Path(data_dir) / DATA_FILES[name]
    if not path.is_file():
        raise DataError(f"expected the {name!r} data file here, but it is missing", file=path)
    return path
