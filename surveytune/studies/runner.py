"""A study end to end, as resumable stages in one run folder.

``run`` logs six stages, each skipped when its output exists (so re-running the command
resumes and an interruption loses at most the stage in progress; training resumes from its
checkpoint):

1. loading data                     the study's splits (``run.json`` records what they hold)
2. ``baselines.json``               every baseline of ``baselines.BASELINES``, fitted once
3. ``predictions/zero-shot/*.jsonl`` the base model, one file per split
4. ``train/``                       LoRA fine-tuning; the budget's recipe chooses the
                                    checkpoint (``anchored``: on the mean of the valid and
                                    held-out-population losses; ``paper``: on valid)
5. ``predictions/fine-tuned/*.jsonl`` and, with ``order_probe_items``, the option-order probe
6. ``results.json``, ``results.md``, ``report.html``

Nothing is chosen on a test split. Every file is written and read through
:mod:`surveytune.data.records`. What differs between studies (their data, splits, budgets,
note, extra results and report sections) is the study's
:class:`~surveytune.studies.spec.StudySpec`, looked up by name in
:mod:`surveytune.studies.registry`; this module names no study.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from surveytune.backends.adapters import AdapterMeta, load_calibration, load_prior
from surveytune.backends.base import options_class
from surveytune.backends.model_names import DEFAULT_MODEL
from surveytune.data.items import DataError, SurveyItem
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
from surveytune.data.splits import UNSEEN_SURVEY, sample_by_question
from surveytune.methods.baselines import (
    MODEL_METHODS,
    Predictor,
    baseline_predictors,
    competitor_names,
    method_sort_key,
)
from surveytune.methods.calibration import Calibration
from surveytune.methods.metrics import (
    between_population_similarity,
    mean_entropy,
    metrics_table,
    result_rows,
)
from surveytune.methods.ordering import order_consistency
from surveytune.methods.stats import compare_to
from surveytune.report.build import build_report
from surveytune.simulator import Simulator, prediction_records
from surveytune.studies.budgets import Budget
from surveytune.studies.observed_rows import observed_rows
from surveytune.studies.registry import DEFAULT_STUDY, get_study
from surveytune.studies.spec import ScoredSplit, StudySpec, pair_key
from surveytune.training.recipe import data_fingerprint

__all__ = ["Budget", "Study"]

ORDER_PROBE_SEED = 9
"""The seed of the order probe's question sample (the count of the paper's evaluation splits,
as first written; kept so that runs stay comparable)."""

Evaluated = dict[str, list[int]]


def _check_budget(spec: StudySpec, budget: Budget) -> None:
    """Refuse a budget whose paired splits come before their partner or that probes option
    order without scoring valid."""
    for split, partner in spec.paired_splits.items():
        if split in budget.splits and (
                partner not in budget.splits
                or budget.splits.index(partner) > budget.splits.index(split)):
            raise DataError(f"budget {budget.name!r}: {split} is paired with {partner}'s "
                            f"sample, so {partner} must come before it in splits")
    if budget.order_probe_items and "valid" not in budget.splits:
        raise DataError(f"budget {budget.name!r}: the option-order probe reverses the "
                        "options of scored valid items, so splits must include valid")


class Study:
    """One run folder of a study. ``run()`` does whatever is not done yet."""

    def __init__(self, out_dir: str | os.PathLike, data_dir: str | os.PathLike,
                 budget: str | Budget = "quick", model: str = DEFAULT_MODEL,
                 log: Callable[[str], None] = print, study: str = DEFAULT_STUDY,
                 backend: str = "hf", backend_options: dict[str, Any] | None = None) -> None:
        self.spec = get_study(study)
        chosen = self.spec.budget(budget) if isinstance(budget, str) else budget
        _check_budget(self.spec, chosen)
        self.study = self.spec.name
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
        splits = self.spec.build_splits(self.data_dir, self.budget, self.log)
        evaluated = self._evaluated_items(splits)
        self._check_or_write_run_info(splits, evaluated)
        self.log("[2/6] baselines")
        predictors = baseline_predictors(splits["train"])
        baselines = self._baselines(splits, evaluated, predictors)
        self._splits = splits
        self.log("[3/6] zero-shot scoring")
        self._score("zero-shot", evaluated, adapter=None)
        self.log("[4/6] fine-tuning (resumes from the last checkpoint)")
        adapter = self._train(splits)
        calibration = self._calibration(adapter)
        self.log("[5/6] fine-tuned scoring")
        self._score("fine-tuned", evaluated, adapter=adapter)
        if self.budget.order_probe_items:
            self.log(f"      option-order probe on up to {self.budget.order_probe_items} of the "
                     "valid items, options reversed")
            for method, weights in (("zero-shot", None), ("fine-tuned", adapter)):
                self._order_probe(method, weights, evaluated)
        self.log("[6/6] results and report")
        results = self._results(baselines, evaluated, predictors, calibration).to_dict()
        build_report(self.out, self.spec.report())
        results["elapsed_s_this_call"] = time.monotonic() - started
        return results

    def _evaluated_items(self, splits: dict[str, list[SurveyItem]]) -> Evaluated:
        """Indices of the items scored in each split (all, or a seeded question sample; a
        paired split: the twins of its partner's sample, so the pairs match)."""
        keep: Evaluated = {}
        for number, name in enumerate(self.budget.splits):
            limit = self.budget.goqa_items if name == UNSEEN_SURVEY else self.budget.eval_items
            if name == "valid" and self.budget.valid_items is not None:
                limit = self.budget.valid_items
            items = splits[name]
            partner = self.spec.paired_splits.get(name)
            if partner is not None:
                chosen = {pair_key(splits[partner][i]) for i in keep[partner]}
                keep[name] = [i for i, item in enumerate(items) if pair_key(item) in chosen]
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

    def _baselines(self, splits, evaluated: Evaluated,
                   predictors: dict[str, Predictor]) -> list[ResultRow]:
        """Every baseline's rows on every scored split: predicted on the whole split (so
        ``country-mean-loo`` averages over all other populations), scored on its sample."""
        if (self.out / BASELINES_FILE).exists():
            return BaselineResults.read(self.out).results
        rows = []
        for name, predict in predictors.items():
            for split in self.budget.splits:
                items, index = splits[split], evaluated[split]
                predictions = predict(items)
                rows.append(ResultRow.from_dict(result_rows(
                    name, split, [items[i] for i in index], [predictions[i] for i in index])))
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
        index = sample_by_question(valid, self.budget.order_probe_items, seed=ORDER_PROBE_SEED)
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

    def _kept_step(self) -> int | None:
        training = read_run_training(self.out)
        return None if training is None else training.best_step

    @staticmethod
    def _calibration(adapter: Path) -> dict[str, Any]:
        """The fine-tuned model's calibration as its adapter records it ({} when none)."""
        calibration = load_calibration(adapter, AdapterMeta.read(adapter))
        return {} if calibration is None else calibration.to_dict()

    def _precision(self) -> dict[str, Any]:
        """The training precision its record states and what the zero-shot backend records
        of its scoring arithmetic (hf: the dtype and device)."""
        training = read_run_training(self.out)
        options = options_class(self.backend).from_values(self.backend_options)
        return {"training": {} if training is None else training.precision,
                "scoring": {"backend": self.backend, **options.precision()}}

    def _scored_split(self, name: str, evaluated: Evaluated,
                      predictors: dict[str, Predictor]) -> ScoredSplit:
        """A split's evaluated items, every baseline's predictions of them and the models'
        prediction records, which must be of those items in that order."""
        items = [self._splits[name][i] for i in evaluated[name]]
        models = {}
        for method in MODEL_METHODS:
            path = predictions_path(self.out, method, name)
            models[method] = read_predictions(path)
            if [r.id for r in models[method]] != [i.id for i in items]:
                raise DataError("predictions do not match the split's items; delete the "
                                "predictions folder and re-run", file=path)
        return ScoredSplit(name, items, {b: predict(items) for b, predict in predictors.items()},
                           models)

    def _results(self, baselines: list[ResultRow], evaluated: Evaluated,
                 predictors: dict[str, Predictor], calibration: dict[str, Any]) -> RunResults:
        rows = list(baselines)
        diversity = []
        competitors = [name for name in competitor_names() if name in predictors]
        scored = [self._scored_split(name, evaluated, predictors) for name in self.budget.splits]
        for split in scored:
            diversity.append(_diversity_row(split.name, "human", split.items, None))
            diversity += [_diversity_row(split.name, baseline, split.items,
                                         split.baselines[baseline]) for baseline in competitors]
            for method, records in split.models.items():
                items = [r.to_item() for r in records]
                predicted = [r.predicted for r in records]
                rows.append(ResultRow.from_dict(result_rows(method, split.name, items,
                                                            predicted)))
                diversity.append(_diversity_row(split.name, method, items, predicted))
        rows.sort(key=lambda r: (self.budget.splits.index(r.split), method_sort_key(r.method)))
        comparisons = [row for split in scored for row in _comparisons(split, competitors)]
        observed = self._observed_rows(scored, calibration)
        results = RunResults(
            results=rows, diversity=diversity, budget=asdict(self.budget), model=self.model,
            note=self.spec.note(self._splits), eval_items_per_split=self.budget.eval_items,
            question_fraction=self.budget.question_fraction,
            evaluated={name: len(index) for name, index in evaluated.items()},
            order_consistency=self._order_rows(), study=self.spec.name,
            calibration=calibration, precision=self._precision(), comparisons=comparisons,
            kept_step=self._kept_step(), observed_rows=observed["rows"],
            observed_comparisons=observed["comparisons"], **self.spec.extra_results(scored))
        results.write(self.out)
        return results

    def _observed_rows(self, scored: Sequence[ScoredSplit],
                       calibration: dict[str, Any]) -> dict[str, list]:
        """The study's rows for k observed cells (:mod:`surveytune.studies.observed_rows`)
        on the scored splits its spec names; the fine-tuned model's row re-anchors its own
        recorded distributions on the observed prior with its calibration."""
        found: dict[str, list] = {"rows": [], "comparisons": []}
        designs = {s.name: s for s in scored if s.name in self.spec.observed}
        if not designs:
            return found
        self.log("      what observations buy: "
                 + ", ".join(f"{name} (k = {', '.join(map(str, self.spec.observed[name].ks))} "
                             f"observed {self.spec.observed[name].observe})"
                             for name in designs))
        adapter = self.out / "train" / "adapter"
        prior = load_prior(adapter, AdapterMeta.read(adapter)) if calibration else None
        for name, split in designs.items():
            model = (None if prior is None else
                     (split.models["fine-tuned"], Calibration.from_dict(calibration),
                      prior.train))
            rows = observed_rows(name, self.spec.observed[name], self._splits[name],
                                 split.items, split.baselines, self._splits["train"],
                                 model=model, log=self.log)
            for key in found:
                found[key] += rows[key]
        return found


def _diversity_row(split: str, method: str, items, predictions) -> DiversityRow:
    dists = [i.distribution for i in items] if predictions is None else predictions
    try:
        similarity = between_population_similarity(items, predictions)
    except ValueError:  # no question with two populations in this sample
        similarity = None
    return DiversityRow(split, method, similarity, mean_entropy(dists))


def _comparisons(split: ScoredSplit, baselines: Sequence[str],
                 metric: str = "1-jsd") -> list[dict[str, Any]]:
    """Each model against each baseline (and fine-tuned against zero-shot) on one split: the
    paired difference of ``metric`` with its 95% interval resampling the split's questions
    (the findings and the goals read these)."""
    scores = {name: list(metrics_table(split.items, predicted)[metric])
              for name, predicted in split.baselines.items() if name in baselines}
    rows = []
    for number, (method, records) in enumerate(split.models.items()):
        scores[method] = [r.score for r in records] if metric == "1-jsd" else list(
            metrics_table(split.items, [r.predicted for r in records])[metric])
        earlier = list(split.models)[:number]  # fine-tuned is also compared with zero-shot
        for versus, interval in compare_to(split.items, scores, method,
                                           [*earlier, *baselines]).items():
            rows.append({"split": split.name, "method": method, "versus": versus,
                         "metric": metric, "n": interval.n_items,
                         "questions": interval.n_clusters, **interval.difference_fields()})
    return rows
