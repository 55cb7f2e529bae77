"""The run folder's files as dataclasses: one definition that writers and readers share.

A study's run folder (``surveytune reproduce``) holds::

    run.json                        RunInfo: budget, model, data fingerprints (resume check)
    baselines.json                  BaselineResults: one ResultRow per baseline and split
    predictions/{method}/{split}.jsonl   PredictionRecord per item (also `evaluate`'s output)
    train/training.json             TrainingRecord: config, history, best step
    results.json                    RunResults: every ResultRow, diversity, what was run

Each class reads and writes its file (``read``/``write``, atomically) in the on-disk JSON
shape; a file that is missing or malformed raises :class:`~surveytune.data.items.DataError`
naming the file (and line). Readers take the files as written: nothing is recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from surveytune.data.files import atomic_write_text
from surveytune.data.items import DataError, SurveyItem

RUN_FILE = "run.json"
BASELINES_FILE = "baselines.json"
RESULTS_FILE = "results.json"
TRAINING_FILE = Path("train") / "training.json"
PREDICTIONS_DIR = "predictions"


def predictions_path(run_dir: str | os.PathLike, method: str, split: str) -> Path:
    """Where a run folder keeps one method's predictions on one split."""
    return Path(run_dir) / PREDICTIONS_DIR / method / f"{split}.jsonl"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON: {error}", file=path, line=error.lineno) from None


def _write_json(path: str | os.PathLike, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1))


def _object(raw: Any, path: Path, required: Sequence[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object", file=path)
    for key in required:
        if key not in raw:
            raise DataError("missing", file=path, field=key)
    return raw


# --- result rows ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultRow:
    """One method's mean metrics on one split (see :func:`surveytune.methods.metrics.result_rows`).

    On disk: ``{"method", "split", "n", <metric>: value, ...}``.
    """

    method: str
    split: str
    n: int
    metrics: dict[str, float]

    REQUIRED = ("method", "split", "n", "1-jsd")

    @classmethod
    def from_dict(cls, raw: Any, *, file: Path | None = None, number: int = 0) -> ResultRow:
        for key in cls.REQUIRED:
            if not isinstance(raw, dict) or key not in raw:
                raise DataError(f"result row {number} has no {key!r}", file=file,
                                field="results")
        metrics = {k: v for k, v in raw.items() if k not in ("method", "split", "n")}
        return cls(raw["method"], raw["split"], int(raw["n"]), metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "split": self.split, "n": self.n, **self.metrics}


def _rows(raw: list, path: Path) -> list[ResultRow]:
    if not isinstance(raw, list):
        raise DataError("expected a list", file=path, field="results")
    return [ResultRow.from_dict(row, file=path, number=i) for i, row in enumerate(raw)]


@dataclass(frozen=True)
class DiversityRow:
    """Diversity of one source (``human`` or a model method) on one split."""

    split: str
    method: str
    between_population: float | None  # mean pairwise 1-jsd between populations
    mean_normalised_entropy: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "method": self.method,
                "between_population_1-jsd": self.between_population,
                "mean_normalised_entropy": self.mean_normalised_entropy}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DiversityRow:
        return cls(raw["split"], raw["method"], raw.get("between_population_1-jsd"),
                   raw.get("mean_normalised_entropy"))


@dataclass
class OrderRow:
    """Option-order consistency of one method on one split (:mod:`surveytune.methods.ordering`)."""

    split: str
    method: str
    n: int
    top_option_agreement: float
    similarity: float  # mean 1-jsd between the predictions for the two option orders

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "method": self.method, "n": self.n,
                "top_option_agreement": self.top_option_agreement, "1-jsd": self.similarity}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OrderRow:
        return cls(raw["split"], raw["method"], raw["n"], raw["top_option_agreement"],
                   raw["1-jsd"])


ORDER_PROBE = "order-probe"
"""Prediction files of the option-order probe: ``{ORDER_PROBE}.jsonl`` (options as given) and
``{ORDER_PROBE}-reversed.jsonl`` (options reversed, predictions mapped back)."""


# --- results.json, baselines.json, run.json ------------------------------------------------

@dataclass
class RunResults:
    """``results.json``: every result row of a study and what the study ran."""

    results: list[ResultRow]
    diversity: list[DiversityRow] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    note: str = ""  # which test rows the data hold
    eval_items_per_split: int | None = None
    question_fraction: float | None = None
    evaluated: dict[str, int] = field(default_factory=dict)
    order_consistency: list[OrderRow] = field(default_factory=list)
    # The study's registry name (surveytune.studies.registry); "" in results.json written
    # before it was recorded, which only the WVS study wrote.
    study: str = ""
    # SubPOP-comparable Wasserstein distance per split and method:
    # {"split", "method", "n_ordinal", "wd_subpop"} (see metrics.SUBPOP_WD_DESCRIPTION)
    subpop_wd: list[dict[str, Any]] = field(default_factory=list)
    # A few valid items in English and Chinese: {"population", "question_id", "question_en",
    # "question_zh", "human", "<method> en", "<method> zh"}
    language_pairs: list[dict[str, Any]] = field(default_factory=list)
    # The fine-tuned model's calibration (surveytune.methods.calibration, fit on validation data):
    # {"scales": {group: s}, "prior_weights": {group: w}, "fitted_on": {group: n}}; {} if none.
    calibration: dict[str, Any] = field(default_factory=dict)
    # The arithmetic used: {"training": {"requested", "used", "reason"}, "scoring": {...}}
    # (surveytune.backends.precision); {} in runs made before it was recorded.
    precision: dict[str, Any] = field(default_factory=dict)
    # Each model against each competitor baseline per split: the paired difference of 1-jsd
    # with its interval resampling questions (surveytune.methods.stats): {"split", "method",
    # "versus", "metric", "n", "questions", "difference", "low", "high", "level", "verdict"}.
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    # The training step whose weights the fine-tuned model has (0: the base weights; None
    # in runs made before it was recorded).
    kept_step: int | None = None
    # What observations buy (surveytune.studies.observed_rows): the scores with k observed
    # cells per question or population, {"split", "observe", "k", "method", "n", "questions",
    # "observed_cells", "1-jsd"}, and their paired comparisons (the fields of comparisons,
    # with "observe" and "k"); empty for a study without an observed design.
    observed_rows: list[dict[str, Any]] = field(default_factory=list)
    observed_comparisons: list[dict[str, Any]] = field(default_factory=list)

    def comparison(self, split: str, method: str, versus: str) -> dict[str, Any] | None:
        """The comparison row of ``method`` against ``versus`` on ``split`` (None if absent)."""
        return next((c for c in self.comparisons if (c["split"], c["method"], c["versus"])
                     == (split, method, versus)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "results": [r.to_dict() for r in self.results],
                "diversity": [d.to_dict() for d in self.diversity],
                "order_consistency": [o.to_dict() for o in self.order_consistency],
                "budget": self.budget,
                "model": self.model, "note": self.note,
                "eval_items_per_split": self.eval_items_per_split,
                "question_fraction": self.question_fraction, "evaluated": self.evaluated,
                "subpop_wd": self.subpop_wd, "language_pairs": self.language_pairs,
                "calibration": self.calibration, "precision": self.precision,
                "comparisons": self.comparisons, "kept_step": self.kept_step,
                "observed_rows": self.observed_rows,
                "observed_comparisons": self.observed_comparisons}

    @classmethod
    def from_dict(cls, raw: Any, path: Path | None = None) -> RunResults:
        if not isinstance(raw, dict) or not isinstance(raw.get("results"), list):
            raise DataError("expected an object with a 'results' list", file=path,
                            field="results")
        return cls(results=_rows(raw["results"], path),
                   diversity=[DiversityRow.from_dict(_object(d, path, ("split", "method")))
                              for d in raw.get("diversity") or []],
                   order_consistency=[
                       OrderRow.from_dict(_object(o, path, ("split", "method", "n",
                                                            "top_option_agreement", "1-jsd")))
                       for o in raw.get("order_consistency") or []],
                   budget=raw.get("budget") or {}, model=raw.get("model"),
                   note=raw.get("note") or "",
                   eval_items_per_split=raw.get("eval_items_per_split"),
                   question_fraction=raw.get("question_fraction"),
                   evaluated=raw.get("evaluated") or {}, study=raw.get("study") or "",
                   subpop_wd=[_object(w, path, ("split", "method"))
                              for w in raw.get("subpop_wd") or []],
                   language_pairs=[_object(x, path, ("population", "question_id"))
                                   for x in raw.get("language_pairs") or []],
                   calibration=_object(raw.get("calibration") or {}, path, ()),
                   precision=_object(raw.get("precision") or {}, path, ()),
                   comparisons=[_object(c, path, ("split", "method", "versus", "difference",
                                                  "low", "high", "verdict"))
                                for c in raw.get("comparisons") or []],
                   kept_step=raw.get("kept_step"),
                   observed_rows=[_object(r, path, ("split", "k", "method", "n", "1-jsd"))
                                  for r in raw.get("observed_rows") or []],
                   observed_comparisons=[
                       _object(c, path, ("split", "k", "method", "versus", "difference", "low",
                                         "high", "verdict"))
                       for c in raw.get("observed_comparisons") or []])

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunResults:
        path = Path(run_dir) / RESULTS_FILE
        if not path.is_file():
            raise DataError("no results.json: is this a finished surveytune run?", file=path)
        return cls.from_dict(_read_json(path), path)

    def write(self, run_dir: str | os.PathLike) -> None:
        _write_json(Path(run_dir) / RESULTS_FILE, self.to_dict())


@dataclass
class BaselineResults:
    """``baselines.json``: one result row per baseline and split."""

    results: list[ResultRow]

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> BaselineResults:
        path = Path(run_dir) / BASELINES_FILE
        raw = _object(_read_json(path), path, ("results",))
        return cls(_rows(raw["results"], path))

    def write(self, run_dir: str | os.PathLike) -> None:
        _write_json(Path(run_dir) / BASELINES_FILE,
                    {"results": [r.to_dict() for r in self.results]})


@dataclass
class RunInfo:
    """``run.json``: what a run folder holds, so a resumed run can check it is the same run."""

    budget: dict[str, Any]
    model: str
    data_dir: str
    fingerprint: dict[str, str]  # split -> sha256 of its items
    evaluated: dict[str, int]    # split -> items scored

    IDENTITY = ("budget", "model", "fingerprint")
    """The fields that make two runs the same run (the data folder may move)."""

    def __post_init__(self) -> None:
        # As it reads back from JSON (tuples become lists), so comparisons are like for like.
        self.budget = json.loads(json.dumps(self.budget))

    def same_run(self, other: RunInfo) -> bool:
        return all(getattr(self, k) == getattr(other, k) for k in self.IDENTITY)

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunInfo:
        path = Path(run_dir) / RUN_FILE
        raw = _object(_read_json(path), path, [f.name for f in fields(cls)])
        return cls(**{f.name: raw[f.name] for f in fields(cls)})

    def write(self, run_dir: str | os.PathLike) -> None:
        _write_json(Path(run_dir) / RUN_FILE, asdict(self))


# --- predictions ---------------------------------------------------------------------------

OPTIONAL_RECORD_FIELDS = ("scale_positions", "model", "elicitation")
"""Fields of a prediction record that are left out of its line when they are None."""


@dataclass(frozen=True)
class PredictionRecord:
    """One scored item: what was asked, what people said, what the model said.

    On disk one JSON line; ``score`` is the key ``"1-jsd"`` (of the unrounded prediction).
    """

    id: str
    split: str
    survey: str
    population: str
    question_id: str
    question: str
    options: list[str]
    human: list[float]
    predicted: list[float]
    letter_mass: float
    score: float
    scale_positions: list[int] | None = None  # the item's ordered scale, when not all options
    # The model's own distribution before its calibration combined it with the prior (written
    # only by a calibrated model): re-anchoring on another prior starts from it.
    model: list[float] | None = None
    # How the distribution was elicited when not plain first-token logprobs ("chat-prefill",
    # "chat-instruction", "verbalized", "sampling-completions", ...); absent on disk if None.
    elicitation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["1-jsd"] = raw.pop("score")
        for optional in OPTIONAL_RECORD_FIELDS:
            if raw[optional] is None:
                del raw[optional]
        return raw

    @classmethod
    def from_dict(cls, raw: Any, *, file: Path | None = None,
                  line: int | None = None) -> PredictionRecord:
        if not isinstance(raw, dict):
            raise DataError("expected a JSON object", file=file, line=line)
        keys = [f.name if f.name != "score" else "1-jsd" for f in fields(cls)
                if f.name not in OPTIONAL_RECORD_FIELDS]
        for key in keys:
            if key not in raw:
                raise DataError("missing", file=file, line=line, field=key)
        return cls(*(raw[key] for key in keys),
                   **{name: raw.get(name) for name in OPTIONAL_RECORD_FIELDS})

    def to_item(self) -> SurveyItem:
        """A minimal item for metrics (distribution and grouping; no validation)."""
        return SurveyItem(id=self.id, survey=self.survey, question_id=self.question_id,
                          question=self.question, options=tuple(self.options),
                          distribution=tuple(self.human), population=self.population,
                          split=self.split,
                          scale_positions=(None if self.scale_positions is None
                                           else tuple(self.scale_positions)))


def write_predictions(records: Sequence[PredictionRecord], path: str | os.PathLike) -> None:
    """JSONL, one record a line, atomically."""
    atomic_write_text(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                                    for r in records))


def read_predictions(path: str | os.PathLike) -> list[PredictionRecord]:
    """The records of one JSONL file; a bad line raises DataError naming file and line."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not valid JSON: {error.msg}", file=path, line=number) from None
            records.append(PredictionRecord.from_dict(raw, file=path, line=number))
    return records


def read_method_predictions(run_dir: str | os.PathLike, method: str) -> list[PredictionRecord]:
    """Every ``predictions/{method}/*.jsonl`` record of a run folder, files in name order
    (empty when the method has none yet)."""
    folder = Path(run_dir) / PREDICTIONS_DIR / method
    if not folder.is_dir():
        return []
    return [r for path in sorted(folder.glob("*.jsonl")) for r in read_predictions(path)]


# --- training.json -------------------------------------------------------------------------

@dataclass
class TrainingRecord:
    """``training.json``: how a fine-tuning run went (written when ``train`` returns).

    ``history`` holds one ``{"step", "valid_loss", "valid_<metric>", ...}`` per validation;
    ``train_loss`` one ``[step, loss]`` per optimizer step; ``extra`` whatever the caller
    recorded (the simulator: ``base_model``, ``chat``, ``template``), flat in the file.
    """

    config: dict[str, Any]
    fingerprint: dict[str, str]
    steps_done: int
    total_steps: int
    stopped_by: str  # "steps" (finished) or "max_minutes"
    best_step: int | None
    best_valid_loss: float | None
    elapsed_s: float
    history: list[dict[str, Any]]
    train_loss: list[list[float]] = field(default_factory=list)
    # The precision used ({"requested", "used", "reason"}; surveytune.backends.precision);
    # {} before.
    precision: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.stopped_by == "steps"

    def to_dict(self) -> dict[str, Any]:
        raw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**raw, **self.extra}

    @classmethod
    def read(cls, train_dir: str | os.PathLike) -> TrainingRecord:
        """From ``train_dir/training.json`` (``train_dir`` is ``train``'s ``out_dir``)."""
        path = Path(train_dir) / TRAINING_FILE.name
        names = [f.name for f in fields(cls) if f.name != "extra"]
        raw = _object(_read_json(path), path,
                      [n for n in names if n not in ("train_loss", "precision")])
        return cls(**{n: raw[n] for n in names if n in raw},
                   extra={k: v for k, v in raw.items() if k not in names})

    def write(self, train_dir: str | os.PathLike) -> None:
        atomic_write_text(Path(train_dir) / TRAINING_FILE.name,
                          json.dumps(self.to_dict(), indent=1))


def read_run_training(run_dir: str | os.PathLike) -> TrainingRecord | None:
    """A run folder's ``train/training.json``, or None when the run has none (yet)."""
    path = Path(run_dir) / TRAINING_FILE
    return TrainingRecord.read(path.parent) if path.is_file() else None
