"""The GSS study: SubPOP's GSS 2022 US subgroups (SubPOP-Eval, 133 questions x 22 subgroups).

Splits of :func:`surveytune.data.splits.gss_splits`: whole subgroups and a share of the
questions held out. Its results add the SubPOP-comparable Wasserstein distance of every
method (``subpop_wd``) and its report shows them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from surveytune.data.loaders import find_data_file, load_gss
from surveytune.data.records import RunResults
from surveytune.data.splits import GSS_SPLITS, gss_splits, held_out_groups, split_sort_key
from surveytune.methods.baselines import method_sort_key
from surveytune.methods.metrics import SUBPOP_WD, SUBPOP_WD_DESCRIPTION, subpop_wd_mean
from surveytune.report.sections import Section, Tab, fmt
from surveytune.studies.budgets import Budget, lora_settings
from surveytune.studies.spec import Log, ScoredSplit, Splits, StudySpec, split_table
from surveytune.training.recipe import TrainConfig

EVAL_SPLITS = tuple(name for name in GSS_SPLITS if name != "train")
TEST_SPLITS = tuple(name for name in EVAL_SPLITS if name != "valid")

_LORA = lora_settings("paper")

HELD_OUT = ("6 whole subgroups, one from each of 6 seeded attributes (every attribute keeps "
            "a training group); 10% of the questions for valid, 20% for the test splits")

BUDGETS = {
    "quick": Budget(
        "quick", "the GSS subgroup study (SubPOP-Eval, 133 questions x 22 US subgroups; "
        f"held out: {HELD_OUT}) in under 10 minutes on 2 CPU cores: 60 LoRA steps of 8, "
        "checkpoint chosen on 64 valid items at steps 0, 30 and 60, about 96 items (whole "
        "questions, seeded) per test split",
        TrainConfig(**_LORA, learning_rate=5e-4, max_steps=60, warmup_ratio=0.1,
                    eval_every=30, eval_items=64, checkpoint_every=10),
        eval_items=96, goqa_items=None, splits=TEST_SPLITS),
    "default": Budget(
        "default", "the GSS subgroup study: one epoch of LoRA on the train split (186 steps of "
        "8), checkpoint chosen on the whole valid split (208 items) at steps 0, 93 and 186, "
        "every test item scored (about 25 min on 2 CPU cores, estimated)",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=1.0, eval_every=93, eval_items=None),
        eval_items=None, goqa_items=None, splits=TEST_SPLITS),
    "full": Budget(
        "full", "the GSS subgroup study: 3 epochs of LoRA, checkpoint on the whole valid split "
        "every 93 steps, every item of every split (valid too) scored",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=3.0, eval_every=93, eval_items=None),
        eval_items=None, goqa_items=None, splits=EVAL_SPLITS),
}

DATA_FILE = "subpop-gss"
"""SubPOP-Eval's GSS file's key for :func:`~surveytune.data.loaders.find_data_file`."""

HELD_GROUPS = 6
"""Whole subgroups held out (:func:`~surveytune.data.splits.gss_splits`' ``held_groups``)."""


def study_splits(data_dir: str | os.PathLike, seed: int = 0) -> Splits:
    """The GSS subgroup study's splits (:func:`surveytune.data.splits.gss_splits`)."""
    return gss_splits(load_gss(find_data_file(data_dir, DATA_FILE)), held_groups=HELD_GROUPS,
                      seed=seed)


def build_splits(data_dir: os.PathLike, budget: Budget, log: Log) -> Splits:  # noqa: ARG001
    """Every GSS split (each budget scores some of them), naming the held-out subgroups."""
    splits = study_splits(data_dir)
    log("      held-out subgroups: " + ", ".join(held_out_groups(splits)))
    return splits


def note(splits: Splits) -> str:
    """The held-out subgroups and the question counts, for results.json."""
    held = held_out_groups(splits)
    counts = {name: len({i.question_id for i in splits[name]})
              for name in ("train", "valid", "test_questions")}
    return (f"GSS 2022 (SubPOP-Eval); {len(held)} whole subgroups held out, at most "
            f"one per attribute: {', '.join(held)}; questions: {counts['train']} "
            f"train, {counts['valid']} valid, {counts['test_questions']} test")


def _wd_row(split: str, method: str, items, predictions) -> dict[str, Any]:
    value, n = subpop_wd_mean(items, predictions)
    return {"split": split, "method": method, "n_ordinal": n, SUBPOP_WD: value}


def subpop_wd(scored: Sequence[ScoredSplit]) -> dict[str, Any]:
    """The SubPOP-comparable Wasserstein distance of every baseline and model per split."""
    rows = []
    for split in scored:
        rows += [_wd_row(split.name, baseline, split.items, predicted)
                 for baseline, predicted in split.baselines.items()]
        rows += [_wd_row(split.name, method, split.items, [r.predicted for r in records])
                 for method, records in split.models.items()]
    return {"subpop_wd": rows}


SUBPOP_SENTENCE = (
    "SubPOP (Suh et al. 2025) reports a Wasserstein distance on OpinionQA (Pew ATP), not on "
    "the GSS: Mistral-7B fine-tuned .096, uniform .178, human bound .031 (METHOD.md §8). Ours "
    "is defined above on this run's GSS items; set it beside theirs for scale only (another "
    "survey, other subgroups and questions, a 135M model). Not read from SubPOP's code: our "
    "definition, per their description of an ordinal WD normalised to [0, 1].")


def subpop_wd_table(run: RunResults) -> Tab | None:
    """The SubPOP-comparable Wasserstein distance of every method on every split."""
    if not run.subpop_wd:
        return None
    by_split: dict[str, dict[str, dict[str, Any]]] = {}
    for row in run.subpop_wd:
        by_split.setdefault(row["split"], {})[row["method"]] = row
    names = sorted({row["method"] for row in run.subpop_wd}, key=method_sort_key)
    tab = Tab(["split", "ordinal items", *names], [False, True] + [True] * len(names))
    for split in sorted(by_split, key=split_sort_key):
        rows = by_split[split]
        n = {r.get("n_ordinal") for r in rows.values()}
        tab.add([split, "-".join(str(v) for v in sorted(n)),
                 *[fmt(rows.get(m, {}).get(SUBPOP_WD)) for m in names]])
    return tab



def wd_sections(run: RunResults) -> list[Section]:
    """The Wasserstein table, when the run has its rows."""
    wd = subpop_wd_table(run)
    if wd is None:
        return []
    return [("SubPOP-comparable Wasserstein distance (lower is better)", [
        ("p", f"`{SUBPOP_WD}`: {SUBPOP_WD_DESCRIPTION}."), ("table", wd),
        ("note", SUBPOP_SENTENCE)])]


SPEC = StudySpec(
    name="gss", description="SubPOP's GSS 2022 US subgroups",
    budgets=BUDGETS, data_files=lambda budget: (DATA_FILE,), build_splits=build_splits,
    splits=split_table(GSS_SPLITS, {
        "train": "training subgroups and questions",
        "valid": "unseen questions, training subgroups (chooses the checkpoint)",
        "test_questions": "unseen questions, training subgroups",
        "test_groups": "unseen subgroups, training questions",
        "test_both": "unseen subgroups and questions"}),
    note=note, run_folder_prefix="gss-", extra_results=subpop_wd, closing_sections=wd_sections)
