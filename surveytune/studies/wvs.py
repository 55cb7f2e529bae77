"""The WVS study: the paper's experiment on the WVS-7 countries (Cao et al., NAACL 2025).

Splits: the paper's train, valid and test_1 … test_7 from the unified WVS file
(:func:`surveytune.data.splits.build_paper_splits`), the unseen survey ``goqa`` (GOQA's Pew
rows) and ``valid_zh``: valid in the paper's Chinese prompt, scored on the twins of valid's
sample. Its report adds the goals (:mod:`surveytune.studies.wvs_goals`) and the paper's
tables (:mod:`surveytune.studies.wvs_report`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from surveytune.data.items import SurveyItem
from surveytune.data.loaders import find_data_file, load_goqa, load_paper_json, load_wvs_unified
from surveytune.data.splits import (
    PAPER_EVAL_SPLITS,
    PAPER_SPLITS,
    UNSEEN_SURVEY,
    build_paper_splits,
    sample_questions,
)
from surveytune.methods.baselines import MODEL_METHODS, ZERO_SHOT
from surveytune.studies import wvs_report
from surveytune.studies.budgets import RECIPES, Budget, lora_settings
from surveytune.studies.observed_rows import ObservedDesign
from surveytune.studies.spec import Log, ScoredSplit, Splits, StudySpec, pair_key, split_table
from surveytune.training.recipe import TrainConfig

TEST_SPLITS = tuple(name for name in PAPER_EVAL_SPLITS if name != "valid")
"""The test splits: valid only chooses the checkpoint."""

VALID_ZH = "valid_zh"
"""The WVS valid split in the paper's Chinese prompt (``sft_wvs_zh_valid.json``), restricted
to the (country, question) pairs of valid: scored next to ``valid`` for a paired comparison."""
LANGUAGE_SPLITS = ("valid", VALID_ZH)

_LORA = lora_settings("anchored")
_PROMPT = RECIPES["anchored"]["prompt"]

BUDGETS = {
    "quick": Budget(
        "quick", "a smoke run in under 10 minutes on 2 CPU cores: the study on a seeded 10% of "
        "the WVS questions (per question group, every country), 60 LoRA steps of 8 items, "
        "checkpoint chosen at steps 0, 30 and 60 on 80 valid items and 80 items of 6 "
        "held-out training countries, every kept test item scored, 32 GOQA items, 64 valid "
        "items (whole questions, seeded) in English and the same in the paper's Chinese prompt",
        TrainConfig(**_LORA, learning_rate=5e-4, max_steps=60, warmup_ratio=0.1,
                    eval_every=30, eval_items=80, checkpoint_every=10),
        eval_items=None, goqa_items=32, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        question_fraction=0.1, valid_items=64, order_probe_items=48, prompt=_PROMPT),
    # Measured on 2 cores (reproduce, 2026-11-27, paper method): zero-shot scoring of every
    # test item and 200 GOQA items 8 min, 856 training steps ~4-5 s each, a 200-item
    # validation ~1 min, fine-tuned scoring 9 min; 99m50s end to end with validation every 285
    # steps. Valid in English and Chinese would add ~20 min for all 1586 pairs, so a seeded
    # question sample of about 600 is scored.
    "default": Budget(
        "default", "one epoch of LoRA on the train split less 6 seeded held-out countries "
        "(743 steps of 8 on the WVS data), checkpoint chosen at steps 0, 372 and 743 on 200 "
        "valid items and 200 items of the held-out countries, every test item scored, 200 "
        "GOQA items, about 600 valid items (whole questions, seeded) in English and in the "
        "paper's Chinese prompt",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=1.0, eval_every=372, eval_items=200),
        eval_items=None, goqa_items=200, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        valid_items=600, order_probe_items=200, prompt=_PROMPT),
    "full": Budget(
        "full", "the real study: 3 epochs of LoRA, checkpoint chosen on the whole valid split "
        "every 400 steps, every item of every split scored, GOQA included (many hours on CPU)",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=3.0, eval_every=400, eval_items=None),
        eval_items=None, goqa_items=None, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        order_probe_items=400, prompt=_PROMPT),
}

HAVE_TEST_ROWS = ("test rows only for the WVS countries in the shared data: test_1 645, "
                  "test_2 600, test_3 140, test_4 240, test_5 599, test_6 140, test_7 240 "
                  "(the paper's test splits are larger)")

DATA_FILE = "wvs-unified"
"""The unified WVS file's key for :func:`~surveytune.data.loaders.find_data_file`."""


def study_splits(data_dir: str | os.PathLike, *, unseen_survey: bool = True,
                 chinese_valid: bool = False) -> dict[str, list[SurveyItem]]:
    """train, valid, test_1..test_7 from the WVS file, ``goqa`` (Pew rows only), and with
    ``chinese_valid`` the paired ``valid_zh`` (see :data:`VALID_ZH`)."""
    splits = build_paper_splits(load_wvs_unified(find_data_file(data_dir, DATA_FILE)))
    if unseen_survey:
        splits[UNSEEN_SURVEY] = [item.replace(split=UNSEEN_SURVEY) for item in
                                 load_goqa(find_data_file(data_dir, "goqa"), drop_wvs=True)]
    if chinese_valid:
        splits[VALID_ZH] = chinese_valid_split(
            splits["valid"], load_paper_json(find_data_file(data_dir, "paper-valid-zh")))
    return splits


def chinese_valid_split(valid: Sequence[SurveyItem], chinese: Sequence[SurveyItem]
                        ) -> list[SurveyItem]:
    """The Chinese items whose (country, question) is in ``valid``, in ``valid``'s order,
    with ``split="valid_zh"``; a valid pair without a Chinese item is left out."""
    by_key = {pair_key(item): item for item in chinese}
    return [by_key[pair_key(item)].replace(split=VALID_ZH) for item in valid
            if pair_key(item) in by_key]


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


def build_splits(data_dir: os.PathLike, budget: Budget, log: Log) -> Splits:
    """The splits a budget scores, restricted to its question sample when it has one."""
    splits = study_splits(data_dir, unseen_survey=UNSEEN_SURVEY in budget.splits,
                          chinese_valid=VALID_ZH in budget.splits)
    if budget.question_fraction is not None:
        splits = restrict_to_questions(splits, budget.question_fraction)
        log(f"      a {budget.question_fraction:.0%} question sample: "
            + ", ".join(f"{name} {len(items)}" for name, items in splits.items()))
    return splits


def data_files(budget: Budget) -> tuple[str, ...]:
    """The WVS file and GOQA, and the paper's Chinese valid file when valid_zh is scored."""
    return (DATA_FILE, "goqa", *(("paper-valid-zh",) if VALID_ZH in budget.splits else ()))


OBSERVED = {"test_1": ObservedDesign("populations", (1, 3, 10)),
            UNSEEN_SURVEY: ObservedDesign("populations", (1, 3, 10)),
            "test_2": ObservedDesign("questions", (3, 10)),
            "test_5": ObservedDesign("questions", (3, 10))}
"""What observations buy (issue 19): k observed countries of each unseen question (test_1,
GOQA), k observed questions of each unseen country (test_2, test_5)."""

LANGUAGE_EXAMPLES = 6
"""Items shown side by side in English and Chinese in the report (the first pairs)."""


def language_pairs(scored: Sequence[ScoredSplit]) -> dict[str, Any]:
    """A few valid items with their human distribution and each model's English and Chinese
    predictions, for the report; empty when valid_zh was not scored."""
    models = {split.name: split.models for split in scored}
    if not all(name in models and set(MODEL_METHODS) <= set(models[name])
               for name in LANGUAGE_SPLITS):
        return {"language_pairs": []}
    english = {pair_key(r): r for r in models["valid"][ZERO_SHOT]}
    chinese = models[VALID_ZH][ZERO_SHOT]
    step = max(1, len(chinese) // LANGUAGE_EXAMPLES)  # spread over the sample's questions
    pairs = []
    for index in range(0, len(chinese), step):
        zh = chinese[index]
        en = english.get(pair_key(zh))
        if en is None:
            continue
        row = {"population": zh.population, "question_id": zh.question_id,
               "question_en": en.question, "question_zh": zh.question, "human": en.human}
        for method in MODEL_METHODS:
            by_key = {pair_key(r): r for r in models["valid"][method]}
            for language, record in (("en", by_key[pair_key(zh)]),
                                     ("zh", models[VALID_ZH][method][index])):
                row[f"{method} {language}"] = record.predicted
                row[f"{method} {language} 1-jsd"] = record.score
        pairs.append(row)
        if len(pairs) >= LANGUAGE_EXAMPLES:
            break
    return {"language_pairs": pairs}


SPEC = StudySpec(
    name="wvs", description="the paper's WVS countries",
    budgets=BUDGETS, data_files=data_files, build_splits=build_splits,
    splits=split_table((*PAPER_SPLITS, UNSEEN_SURVEY, VALID_ZH), {
        "train": "C1×Q1 training countries and questions",
        "valid": "C1×Q2 unseen questions"}),
    note=lambda splits: HAVE_TEST_ROWS, paired_splits={VALID_ZH: "valid"},
    extra_results=language_pairs, observed=OBSERVED,
    opening_sections=wvs_report.opening_sections,
    closing_sections=wvs_report.closing_sections)
