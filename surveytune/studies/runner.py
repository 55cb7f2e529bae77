"""The study: the paper's experiment end to end, as resumable stages in one run folder.

Stages, each skipped when its output exists (so re-running the command resumes and an
interruption loses at most the stage in progress; training resumes from its checkpoint):

1. ``baselines.json``              every baseline of ``baselines.BASELINES``
2. ``predictions/zero-shot/*.jsonl`` the base model, one file per split
3. ``train/``                       LoRA fine-tuning, checkpoint chosen on valid
4. ``predictions/fine-tuned/*.jsonl``
5. ``results.json``, ``results.md``, ``report.html``

Nothing is chosen on a test split: the checkpoint is chosen on (a subsample of) valid.
Every file is written and read through :mod:`surveytune.data.records`.

Two studies (:data:`STUDIES`): ``wvs`` (the paper's WVS countries, :data:`BUDGETS`; its
valid split is also scored in the paper's Chinese prompt as ``valid_zh``, paired item by item)
and ``gss`` (SubPOP's GSS 2022 US subgroups, :data:`GSS_BUDGETS`, splits of
:func:`surveytune.data.splits.gss_splits`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from surveytune.backends.adapters import AdapterMeta, load_calibration
from surveytune.backends.base import options_class
from surveytune.backends.model_names import DEFAULT_MODEL
from surveytune.data.items import DataError, SurveyItem, describe
from surveytune.data.loaders import (
    find_data_file,
    load_goqa,
    load_gss,
    load_paper_json,
    load_wvs_unified,
)
from surveytune.data.records import (
    BASELINES_FILE,
    ORDER_PROBE,
    RUN_FILE,
    BaselineResults,
    DiversityRow,
    OrderRow,
    ResultRow,
    RunInfo,
    RunResults,
    TrainingRecord,
    predictions_path,
    read_predictions,
    read_run_training,
    write_predictions,
)
from surveytune.data.splits import (
    UNSEEN_SURVEY,
    build_paper_splits,
    gss_splits,
    held_out_groups,
    sample_by_question,
    sample_questions,
)
from surveytune.methods.baselines import (
    MODEL_METHODS,
    ZERO_SHOT,
    baseline_predictors,
    competitor_names,
    evaluate_baselines,
    method_sort_key,
)
from surveytune.methods.metrics import (
    SUBPOP_WD,
    between_population_similarity,
    mean_entropy,
    result_rows,
    subpop_wd_mean,
)
from surveytune.methods.ordering import order_consistency
from surveytune.report.build import build_report
from surveytune.simulator import Simulator, prediction_records
from surveytune.studies.budgets import (
    BUDGETS,
    EVAL_SPLITS,
    GSS_BUDGETS,
    GSS_EVAL_SPLITS,
    GSS_TEST_SPLITS,
    LANGUAGE_SPLITS,
    METHODS,
    STUDIES,
    STUDY_BUDGETS,
    TEST_SPLITS,
    VALID_ZH,
    Budget,
    with_method,
)
from surveytune.training.recipe import data_fingerprint

__all__ = ["BUDGETS", "EVAL_SPLITS", "GSS_BUDGETS", "GSS_EVAL_SPLITS", "GSS_TEST_SPLITS",
           "HAVE_TEST_ROWS", "LANGUAGE_SPLITS", "METHODS", "STUDIES", "STUDY_BUDGETS",
           "TEST_SPLITS", "VALID_ZH", "Budget", "Study", "chinese_valid_split", "describe",
           "gss_study_splits", "restrict_to_questions", "study_splits", "with_method"]

HAVE_TEST_ROWS = ("test rows only for the WVS countries in the shared data: test_1 645, "
                  "test_2 600, test_3 140, test_4 240, test_5 599, test_6 140, test_7 240 "
                  "(the paper's test splits are larger)")


def study_splits(data_dir: str | os.PathLike, *, unseen_survey: bool = True,
                 chinese_valid: bool = False) -> dict[str, list[SurveyItem]]:
    """train, valid, test_1..test_7 from the WVS file, ``goqa`` (Pew rows only), and with
    ``chinese_valid`` the paired ``valid_zh`` (see :data:`VALID_ZH`)."""
    splits = build_paper_splits(load_wvs_unified(find_data_file(data_dir, "wvs")))
    if unseen_survey:
        splits[UNSEEN_SURVEY] = [item.replace(split=UNSEEN_SURVEY) for item in
                                 load_goqa(find_data_file(data_dir, "goqa"), drop_wvs=True)]
    if chinese_valid:
        splits[VALID_ZH] = chinese_valid_split(
            splits["valid"], load_paper_json(find_data_file(data_dir, "paper-valid-zh")))
    return splits


def _pair_key(item: SurveyItem) -> tuple[str, str]:
    return (item.population, item.question_id)


def chinese_valid_split(valid: Sequence[SurveyItem], chinese: Sequence[SurveyItem]
                        ) -> list[SurveyItem]:
    """The Chinese items whose (country, question) is in ``valid``, in ``valid``'s order,
    with ``split="valid_zh"``; a valid pair without a Chinese item is left out."""
    by_key = {_pair_key(item): item for item in chinese}
    return [by_key[_pair_key(item)].replace(split=VALID_ZH) for item in valid
            if _pair_key(item) in by_key]


def gss_study_splits(data_dir: str | os.PathLike, seed: int = 0
                     ) -> dict[str, list[SurveyItem]]:
    """The GSS subgroup study's splits (:func:`surveytune.data.splits.gss_splits`)."""
    return gss_splits(load_gss(find_data_file(data_dir, "gss")), seed=seed)


def restrict_to_questions(splits: dict[str, list[SurveyItem]], fraction: float, seed: int = 0,
                          keep_whole: Sequence[str] = ("valid", VALID_ZH, UNSEEN_SURVEY)
                          ) -> dict[str, list[SurveyItem]]:
    """The WVS splits restricted to a seeded question sample (see ``sample_questions``).

    ``keep_whole`` splits are not restricted: valid only chooses the checkpoint, and a few
    questions would make that choice noisy; the unseen survey is sampled on its own.
    """
    wvs = {name: items for name, items in splits.items()
           if name not in (UNSEEN_SURVEY, VALID_ZH)}
    keep = sample_questions(wvs, fraction, seed=seed)
    return {name: items if name in keep_whole else
            [i for i in items if (i.survey, i.question_id) in keep]
            for name, items in splits.items()}


class Study:
    """One run folder of the study. ``run()`` does whatever is not done yet."""

    def __init__(self, out_dir: str | os.PathLike, data_dir: str | os.PathLike,
                 budget: str | Budget = "quick", model: str = DEFAULT_MODEL,
                 log: Callable[[str], None] = print, study: str = "wvs",
                 backend: str = "hf", backend_options: dict[str, Any] | None = None) -> None:
        if study not in STUDIES:
            raise DataError(f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")
        budgets = STUDY_BUDGETS[study]
        if isinstance(budget, str) and budget not in budgets:
            raise DataError(f"unknown budget {budget!r}; choose one of {', '.join(budgets)}")
        chosen = budgets[budget] if isinstance(budget, str) else budget
        if VALID_ZH in chosen.splits and (
                "valid" not in chosen.splits
                or chosen.splits.index("valid") > chosen.splits.index(VALID_ZH)):
            raise DataError(f"budget {chosen.name!r}: {VALID_ZH} is paired with valid's "
                            "sample, so valid must come before it in splits")
        if chosen.order_probe_items and "valid" not in chosen.splits:
            raise DataError(f"budget {chosen.name!r}: the option-order probe reverses the "
                            "options of scored valid items, so splits must include valid")
        self.study = study
        self.out = Path(out_dir)
        self.data_dir = Path(data_dir)
        self.budget = chosen
        self.model = model
        self.log = log
        # Zero-shot scoring goes through ``backend``; training and the fine-tuned adapter
        # (a local folder) always use the hf backend (with backend_options when it is hf).
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self._simulator = None
        self._splits: dict[str, list[SurveyItem]] = {}

    # -- stages -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.log(f"[1/6] loading data from {self.data_dir}")
        if self.study == "gss":
            splits = gss_study_splits(self.data_dir)
            self.log("      held-out subgroups: " + ", ".join(held_out_groups(splits)))
        else:
            splits = study_splits(self.data_dir, unseen_survey=UNSEEN_SURVEY in self.budget.splits,
                                  chinese_valid=VALID_ZH in self.budget.splits)
        if self.budget.question_fraction is not None:
            splits = restrict_to_questions(splits, self.budget.question_fraction)
            self.log(f"      a {self.budget.question_fraction:.0%} question sample: "
                     + ", ".join(f"{name} {len(items)}" for name, items in splits.items()))
        evaluated = self._evaluated_items(splits)
        self._check_or_write_run_info(splits, evaluated)
        self.log("[2/6] baselines")
        baselines = self._baselines(splits, evaluated)
        self._splits = splits
        self.log("[3/6] zero-shot scoring")
        self._score("zero-shot", evaluated, adapter=None)
        self.log("[4/6] fine-tuning (resumes from the last checkpoint)")
        adapter = self._train(splits)
        self.log("[5/6] fine-tuned scoring")
        self._score("fine-tuned", evaluated, adapter=adapter)
        if self.budget.order_probe_items:
            self.log(f"      option-order probe on up to {self.budget.order_probe_items} of the "
                     "valid items, options reversed")
            for method, weights in (("zero-shot", None), ("fine-tuned", adapter)):
                self._order_probe(method, weights, evaluated)
        self.log("[6/6] results and report")
        results = self._results(baselines, evaluated).to_dict()
        build_report(self.out)
        results["elapsed_s_this_call"] = time.monotonic() - started
        return results

    def _evaluated_items(self, splits: dict[str, list[SurveyItem]]) -> dict[str, list[int]]:
        """Indices of the items scored in each split (all, or a seeded question sample)."""
        keep = {}
        for number, name in enumerate(self.budget.splits):
            limit = self.budget.goqa_items if name == UNSEEN_SURVEY else self.budget.eval_items
            if name == "valid" and self.budget.valid_items is not None:
                limit = self.budget.valid_items
            items = splits[name]
            if name == VALID_ZH:  # the Chinese twins of valid's sample, so the pairs match
                chosen = {_pair_key(splits["valid"][i]) for i in keep["valid"]}
                keep[name] = [i for i, item in enumerate(items) if _pair_key(item) in chosen]
                continue
            keep[name] = (list(range(len(items))) if limit is None or limit >= len(items)
                          else sample_by_question(items, limit, seed=number))
        return keep

    def _check_or_write_run_info(self, splits, evaluated) -> None:
        info = RunInfo(budget=asdict(self.budget), model=self.model,
                       data_dir=str(self.data_dir),
                       fingerprint={name: data_fingerprint(items)
                                    for name, items in splits.items()},
                       evaluated={name: len(index) for name, index in evaluated.items()})
        path = self.out / RUN_FILE
        if path.exists():
            if not RunInfo.read(self.out).same_run(info):
                raise DataError("this folder holds a run with another budget, model or data; "
                                "use another --out", file=path)
            self.log(f"resuming the run in {self.out}")
            return
        info.write(self.out)

    def _baselines(self, splits, evaluated) -> list[ResultRow]:
        if (self.out / BASELINES_FILE).exists():
            return BaselineResults.read(self.out).results
        chosen = {name: splits[name] for name in ("train", *self.budget.splits)}
        rows = [ResultRow.from_dict(r) for r in evaluate_baselines(chosen, keep=evaluated)
                if r["split"] != "train"]
        BaselineResults(rows).write(self.out)
        return rows

    def _simulator_for(self, adapter: Path | None, *, training: bool = False) -> Simulator:
        backend = "hf" if training or adapter is not None else self.backend
        if (self._simulator is None or self._simulator.adapter != (adapter and str(adapter))
                or self._simulator.backend.name != backend):
            options = self.backend_options if backend == self.backend else {}
            self._simulator = Simulator.load(self.model, adapter=adapter, backend=backend,
                                             prompt=self.budget.prompt, **options)
        return self._simulator

    def _score(self, method: str, evaluated, adapter: Path | None) -> None:
        for name in self.budget.splits:
            path = predictions_path(self.out, method, name)
            if path.exists():
                continue
            items = [self._splits[name][i] for i in evaluated[name]]
            sim = self._simulator_for(adapter)
            predictions = sim.predict(items, desc=f"{method} {name}")
            write_predictions(prediction_records(name, items, predictions), path)

    def _order_probe_items(self, evaluated) -> list[SurveyItem]:
        """A seeded question sample of the scored valid items (all when there are fewer)."""
        valid = [self._splits["valid"][i] for i in evaluated["valid"]]
        if self.budget.order_probe_items >= len(valid):
            return valid
        index = sample_by_question(valid, self.budget.order_probe_items, seed=len(EVAL_SPLITS))
        return [valid[i] for i in index]

    def _order_probe(self, method: str, adapter: Path | None, evaluated) -> None:
        """Valid items as given (their predictions from the valid split, not scored again)
        and with reversed options (scored, then mapped back)."""
        paths = [predictions_path(self.out, method, f"{ORDER_PROBE}{suffix}")
                 for suffix in ("", "-reversed")]
        if all(path.exists() for path in paths):
            return
        items = self._order_probe_items(evaluated)
        by_id = {r.id: r for r in read_predictions(predictions_path(self.out, method, "valid"))}
        if any(item.id not in by_id for item in items):
            raise DataError("the valid predictions lack items of the order probe; delete the "
                            "predictions folder and re-run",
                            file=predictions_path(self.out, method, "valid"))
        reversed_back = self._simulator_for(adapter).predict_reversed(
            items, desc=f"{method} order probe, reversed")
        write_predictions([by_id[item.id] for item in items], paths[0])
        write_predictions(prediction_records("valid", items, reversed_back), paths[1])

    def _order_rows(self) -> list[OrderRow]:
        rows = []
        for method in MODEL_METHODS:
            paths = [predictions_path(self.out, method, f"{ORDER_PROBE}{suffix}")
                     for suffix in ("", "-reversed")]
            if not all(path.exists() for path in paths):
                continue
            given, back = ([r.predicted for r in read_predictions(p)] for p in paths)
            result = order_consistency(given, back)
            rows.append(OrderRow("valid", method, len(given), result["top_option_agreement"],
                                 result["1-jsd"]))
        return rows

    def _train(self, splits) -> Path:
        train_dir = self.out / "train"
        adapter = train_dir / "adapter"
        if (train_dir / "training.json").exists() and TrainingRecord.read(train_dir).finished:
            return adapter
        sim = self._simulator_for(None, training=True)
        self._simulator = None  # fitting changes the model in place
        sim.fit(splits["train"], splits["valid"], self.out / "train", self.budget.train)
        return adapter

    def _calibration(self) -> dict[str, Any]:
        """The fine-tuned model's calibration as its adapter records it ({} when none)."""
        adapter = self.out / "train" / "adapter"
        calibration = load_calibration(adapter, AdapterMeta.read(adapter))
        return {} if calibration is None else calibration.to_dict()

    def _precision(self) -> dict[str, Any]:
        """The training precision its record states and what the zero-shot backend records
        of its scoring arithmetic (hf: the dtype and device)."""
        training = read_run_training(self.out)
        options = options_class(self.backend).from_values(self.backend_options)
        return {"training": {} if training is None else training.precision,
                "scoring": {"backend": self.backend, **options.precision()}}

    def _results(self, baselines: list[ResultRow], evaluated) -> RunResults:
        rows = list(baselines)
        diversity, wd_rows = [], []
        predictors = baseline_predictors(self._splits["train"])
        competitors = [name for name in competitor_names() if name in predictors]
        # The diversity rows show the competitors; the GSS wd rows every baseline.
        needed = list(predictors) if self.study == "gss" else competitors
        model_predictions: dict[tuple[str, str], list] = {}
        for name in self.budget.splits:
            items = [self._splits[name][i] for i in evaluated[name]]
            diversity.append(_diversity_row(name, "human", items, None))
            for baseline in needed:
                predicted = predictors[baseline](items)
                if baseline in competitors:
                    diversity.append(_diversity_row(name, baseline, items, predicted))
                if self.study == "gss":
                    wd_rows.append(_wd_row(name, baseline, items, predicted))
            for method in MODEL_METHODS:
                records = read_predictions(predictions_path(self.out, method, name))
                scored = [r.to_item() for r in records]
                predicted = [r.predicted for r in records]
                model_predictions[(method, name)] = records
                rows.append(ResultRow.from_dict(result_rows(method, name, scored, predicted)))
                diversity.append(_diversity_row(name, method, scored, predicted))
                if self.study == "gss":
                    if [r.id for r in records] != [i.id for i in items]:
                        raise DataError("predictions do not match the split's items; delete "
                                        "the predictions folder and re-run",
                                        file=predictions_path(self.out, method, name))
                    wd_rows.append(_wd_row(name, method, items, predicted))
        rows.sort(key=lambda r: (self.budget.splits.index(r.split), method_sort_key(r.method)))
        if self.study == "gss":
            held = held_out_groups(self._splits)
            counts = {name: len({i.question_id for i in self._splits[name]})
                      for name in ("train", "valid", "test_questions")}
            note = (f"GSS 2022 (SubPOP-Eval); {len(held)} whole subgroups held out, at most "
                    f"one per attribute: {', '.join(held)}; questions: {counts['train']} "
                    f"train, {counts['valid']} valid, {counts['test_questions']} test")
        else:
            note = HAVE_TEST_ROWS
        results = RunResults(
            results=rows, diversity=diversity, budget=asdict(self.budget), model=self.model,
            note=note, eval_items_per_split=self.budget.eval_items,
            question_fraction=self.budget.question_fraction,
            evaluated={name: len(index) for name, index in evaluated.items()},
            order_consistency=self._order_rows(), study=self.study, subpop_wd=wd_rows,
            language_pairs=_language_pairs(model_predictions), calibration=self._calibration(),
            precision=self._precision())
        results.write(self.out)
        return results


def _wd_row(split: str, method: str, items, predictions) -> dict[str, Any]:
    value, n = subpop_wd_mean(items, predictions)
    return {"split": split, "method": method, "n_ordinal": n, SUBPOP_WD: value}


LANGUAGE_EXAMPLES = 6
"""Items shown side by side in English and Chinese in the report (the first pairs)."""


def _language_pairs(predictions: dict[tuple[str, str], list]) -> list[dict[str, Any]]:
    """A few valid items with their human distribution and each model's English and Chinese
    predictions, for the report; empty when valid_zh was not scored."""
    if not all((m, s) in predictions for m in MODEL_METHODS for s in LANGUAGE_SPLITS):
        return []
    english = {(r.population, r.question_id): r for r in predictions[(ZERO_SHOT, "valid")]}
    chinese = predictions[(ZERO_SHOT, VALID_ZH)]
    step = max(1, len(chinese) // LANGUAGE_EXAMPLES)  # spread over the sample's questions
    pairs = []
    for index in range(0, len(chinese), step):
        zh = chinese[index]
        en = english.get((zh.population, zh.question_id))
        if en is None:
            continue
        row = {"population": zh.population, "question_id": zh.question_id,
               "question_en": en.question, "question_zh": zh.question, "human": en.human}
        for method in MODEL_METHODS:
            by_key = {(r.population, r.question_id): r for r in predictions[(method, "valid")]}
            for language, record in (("en", by_key[(zh.population, zh.question_id)]),
                                     ("zh", predictions[(method, VALID_ZH)][index])):
                row[f"{method} {language}"] = record.predicted
                row[f"{method} {language} 1-jsd"] = record.score
        pairs.append(row)
        if len(pairs) >= LANGUAGE_EXAMPLES:
            break
    return pairs


def _diversity_row(split: str, method: str, items, predictions) -> DiversityRow:
    dists = [i.distribution for i in items] if predictions is None else predictions
    try:
        similarity = between_population_similarity(items, predictions)
    except ValueError:  # no question with two populations in this sample
        similarity = None
    return DiversityRow(split, method, similarity, mean_entropy(dists))
