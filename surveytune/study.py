"""The study: the paper's experiment end to end, as resumable stages in one run folder.

Stages, each skipped when its output exists (so re-running the command resumes and an
interruption loses at most the stage in progress; training resumes from its checkpoint):

1. ``baselines.json``              every baseline of ``baselines.BASELINES``
2. ``predictions/zero-shot/*.jsonl`` the base model, one file per split
3. ``train/``                       LoRA fine-tuning, checkpoint chosen on valid
4. ``predictions/fine-tuned/*.jsonl``
5. ``results.json``, ``results.md``, ``report.html``

Nothing is chosen on a test split: the checkpoint is chosen on (a subsample of) valid.
Every file is written and read through :mod:`surveytune.records`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .baselines import (
    MODEL_METHODS,
    baseline_predictors,
    competitor_names,
    evaluate_baselines,
    method_sort_key,
)
from .items import DataError, SurveyItem
from .loaders import find_data_file, load_goqa, load_wvs_unified
from .metrics import between_population_similarity, mean_entropy, result_rows
from .models import DEFAULT_MODEL
from .ordering import order_consistency
from .records import (
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
    write_predictions,
)
from .report import build_report
from .simulator import Simulator, prediction_records
from .splits import (
    PAPER_SPLITS,
    UNSEEN_SURVEY,
    build_paper_splits,
    sample_by_question,
    sample_questions,
)
from .training import TrainConfig, data_fingerprint

EVAL_SPLITS = (*(name for name in PAPER_SPLITS if name != "train"), UNSEEN_SURVEY)
TEST_SPLITS = tuple(name for name in EVAL_SPLITS if name != "valid")
"""What the smaller budgets score: valid only chooses their checkpoint."""

HAVE_TEST_ROWS = ("test rows only for the WVS countries in the shared data: test_1 645, "
                  "test_2 600, test_3 140, test_4 240, test_5 599, test_6 140, test_7 240 "
                  "(the paper's test splits are larger)")


def study_splits(data_dir: str | os.PathLike, *, unseen_survey: bool = True
                 ) -> dict[str, list[SurveyItem]]:
    """train, valid, test_1..test_7 from the WVS file, and ``goqa`` (Pew rows only)."""
    splits = build_paper_splits(load_wvs_unified(find_data_file(data_dir, "wvs")))
    if unseen_survey:
        splits[UNSEEN_SURVEY] = [item.replace(split=UNSEEN_SURVEY) for item in
                                 load_goqa(find_data_file(data_dir, "goqa"), drop_wvs=True)]
    return splits


def restrict_to_questions(splits: dict[str, list[SurveyItem]], fraction: float, seed: int = 0,
                          keep_whole: Sequence[str] = ("valid", UNSEEN_SURVEY)
                          ) -> dict[str, list[SurveyItem]]:
    """The WVS splits restricted to a seeded question sample (see ``sample_questions``).

    ``keep_whole`` splits are not restricted: valid only chooses the checkpoint, and a few
    questions would make that choice noisy; the unseen survey is sampled on its own.
    """
    wvs = {name: items for name, items in splits.items() if name != UNSEEN_SURVEY}
    keep = sample_questions(wvs, fraction, seed=seed)
    return {name: items if name in keep_whole else
            [i for i in items if (i.survey, i.question_id) in keep]
            for name, items in splits.items()}


def describe(items: Sequence[SurveyItem]) -> dict[str, int]:
    """Counts a person wants to see about a set of items."""
    return {"items": len(items),
            "populations": len({i.population for i in items}),
            "questions": len({(i.survey, i.question_id) for i in items}),
            "surveys": len({i.survey for i in items})}


@dataclass(frozen=True)
class Budget:
    """How much of the study to run.

    ``question_fraction`` keeps a seeded fraction of the WVS questions (per question group,
    the same questions in training and every test split; valid stays whole): a smaller study
    with the same design.
    ``eval_items`` then samples whole questions per split (None: every item kept);
    ``goqa_items`` does the same for the unseen survey. ``order_probe_items`` valid items
    (a seeded question sample; 0: none) are scored again with their options reversed, to
    measure how much each model's answer depends on option order.
    """

    name: str
    description: str
    train: TrainConfig
    eval_items: int | None
    goqa_items: int | None
    splits: tuple[str, ...] = EVAL_SPLITS
    question_fraction: float | None = None
    order_probe_items: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, dict[str, Any]] = {
    # Prior-anchored (surveytune.priors): the model's letter logits are added to the log of the
    # region-mean of the training countries; 6 training countries are held out (seeded) to
    # validate unseen-country ability; the checkpoint is chosen on the mean of the valid and
    # held-out losses; afterwards the model's weight against the prior is calibrated on them.
    "anchored": dict(prior="region-mean", heldout_populations=6, select_on="mean",
                     calibrate=True),
    # The paper's method as this study ran it before: no prior, checkpoint chosen on valid.
    "paper": dict(prior="none", heldout_populations=0, select_on="valid", calibrate=False),
}
"""How the fine-tuned model is made, by name; ``reproduce --method``. Budgets use
``anchored``."""

# LoRA on every linear layer, r=16, lr 2e-4 (the prototype of METHOD.md §7); training runs
# forward/backward in bf16 autocast with float32 weights; scoring is always float32.
_LORA = dict(lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=("all-linear",),
             loss="kl", batch_size=8, precision="bf16-autocast", seed=0, **METHODS["anchored"])

BUDGETS = {
    "quick": Budget(
        "quick", "a smoke run in under 10 minutes on 2 CPU cores: the study on a seeded 10% of "
        "the WVS questions (per question group, every country), 60 LoRA steps of 8 items, "
        "checkpoint chosen on 96 valid items, every kept test item scored, 32 GOQA items",
        TrainConfig(**_LORA, learning_rate=5e-4, max_steps=60, warmup_ratio=0.1,
                    eval_every=20, eval_items=96, checkpoint_every=10),
        eval_items=None, goqa_items=32, splits=TEST_SPLITS,
        question_fraction=0.1, order_probe_items=48),
    # Measured on 2 cores (reproduce, 2026-11-27): zero-shot scoring of every test item and 200
    # GOQA items 8 min, 856 training steps ~4-5 s each, a 200-item validation ~1 min,
    # fine-tuned scoring 9 min; 99m50s end to end with validation every 285 steps. Validating at
    # 0, 428 and 856 only (every 285 added one at step 855, next to 856) and the shared prompt
    # start in training bring the estimate to ~81 min; not yet measured end to end.
    "default": Budget(
        "default", "one epoch of LoRA on the train split (856 steps of 8 on the WVS data), "
        "checkpoint chosen on 200 valid items at steps 0, 428 and 856, every test item "
        "scored, 200 GOQA items (about 80-90 min on 2 CPU cores)",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=1.0, eval_every=428, eval_items=200),
        eval_items=None, goqa_items=200, splits=TEST_SPLITS, order_probe_items=200),
    "full": Budget(
        "full", "the real study: 3 epochs of LoRA, checkpoint chosen on the whole valid split "
        "every 400 steps, every item of every split scored, GOQA included (many hours on CPU)",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=3.0, eval_every=400, eval_items=None),
        eval_items=None, goqa_items=None, order_probe_items=400),
}


def with_method(budget: Budget, method: str) -> Budget:
    """The budget with its fine-tuning method replaced (see :data:`METHODS`); the name says so
    unless it is the budgets' own ``anchored``."""
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}",
                        file="--method")
    if method == "anchored":
        return budget
    return replace(budget, name=f"{budget.name}-{method}",
                   description=f"{budget.description}; fine-tuned with the {method} method",
                   train=replace(budget.train, **METHODS[method]))


class Study:
    """One run folder of the study. ``run()`` does whatever is not done yet."""

    def __init__(self, out_dir: str | os.PathLike, data_dir: str | os.PathLike,
                 budget: str | Budget = "quick", model: str = DEFAULT_MODEL,
                 log: Callable[[str], None] = print, backend: str = "hf",
                 backend_options: dict[str, Any] | None = None) -> None:
        if isinstance(budget, str) and budget not in BUDGETS:
            raise DataError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        self.out = Path(out_dir)
        self.data_dir = Path(data_dir)
        self.budget = BUDGETS[budget] if isinstance(budget, str) else budget
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
        splits = study_splits(self.data_dir)
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
            self.log(f"      option-order probe on {self.budget.order_probe_items} valid items")
            for method, weights in (("zero-shot", None), ("fine-tuned", adapter)):
                self._order_probe(method, weights)
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
            items = splits[name]
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
                                             **options)
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

    def _order_probe_items(self) -> list[SurveyItem]:
        valid = self._splits["valid"]
        index = sample_by_question(valid, self.budget.order_probe_items, seed=len(EVAL_SPLITS))
        return [valid[i] for i in index]

    def _order_probe(self, method: str, adapter: Path | None) -> None:
        """Valid items scored as given and with reversed options (mapped back)."""
        paths = [predictions_path(self.out, method, f"{ORDER_PROBE}{suffix}")
                 for suffix in ("", "-reversed")]
        if all(path.exists() for path in paths):
            return
        items = self._order_probe_items()
        sim = self._simulator_for(adapter)
        as_given = sim.predict(items, desc=f"{method} order probe")
        reversed_back = sim.predict_reversed(items, desc=f"{method} order probe, reversed")
        for path, predictions in zip(paths, (as_given, reversed_back)):
            write_predictions(prediction_records("valid", items, predictions), path)

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

    def _results(self, baselines: list[ResultRow], evaluated) -> RunResults:
        rows = list(baselines)
        diversity = []
        predictors = baseline_predictors(self._splits["train"])
        for name in self.budget.splits:
            items = [self._splits[name][i] for i in evaluated[name]]
            diversity.append(_diversity_row(name, "human", items, None))
            for baseline in competitor_names():
                diversity.append(_diversity_row(name, baseline, items,
                                                predictors[baseline](items)))
            for method in MODEL_METHODS:
                records = read_predictions(predictions_path(self.out, method, name))
                scored = [r.to_item() for r in records]
                predicted = [r.predicted for r in records]
                rows.append(ResultRow.from_dict(result_rows(method, name, scored, predicted)))
                diversity.append(_diversity_row(name, method, scored, predicted))
        rows.sort(key=lambda r: (self.budget.splits.index(r.split), method_sort_key(r.method)))
        results = RunResults(
            results=rows, diversity=diversity, budget=asdict(self.budget), model=self.model,
            note=HAVE_TEST_ROWS, eval_items_per_split=self.budget.eval_items,
            question_fraction=self.budget.question_fraction,
            evaluated={name: len(index) for name, index in evaluated.items()},
            order_consistency=self._order_rows())
        results.write(self.out)
        return results


def _diversity_row(split: str, method: str, items, predictions) -> DiversityRow:
    dists = [i.distribution for i in items] if predictions is None else predictions
    try:
        similarity = between_population_similarity(items, predictions)
    except ValueError:  # no question with two populations in this sample
        similarity = None
    return DiversityRow(split, method, similarity, mean_entropy(dists))
