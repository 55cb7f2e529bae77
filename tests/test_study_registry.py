"""Adding a study is one StudySpec and one registry line: a toy study run end to end."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
from conftest import synthetic_items

from surveytune.data.files import write_jsonl
from surveytune.data.items import DataError
from surveytune.data.loaders import load_items
from surveytune.data.splits import holdout_splits
from surveytune.studies import registry
from surveytune.studies.budgets import Budget
from surveytune.studies.spec import StudySpec, split_table
from surveytune.training.recipe import TrainConfig

TOY_FILE = "toy.jsonl"
TOY_VALID = "toy questions q4 and q5 of the training populations"


def toy_splits(data_dir, budget, log):
    """Carpania and the questions q4, q5 held out; the held-out questions of the training
    populations are valid."""
    items = load_items(data_dir / TOY_FILE, allow_unknown_populations=True)  # made-up names
    splits = holdout_splits(items, populations=["Carpania"], questions=["q4", "q5"])
    splits["valid"] = [item.replace(split="valid") for item in splits.pop("test_questions")]
    log(f"      toy splits: {', '.join(splits)}")
    return splits


SPEC = StudySpec(
    name="toy", description="a toy study of three made-up countries",
    budgets={"tiny": Budget("tiny", "two LoRA steps",
                            TrainConfig(max_steps=2, batch_size=4, eval_every=2,
                                        learning_rate=5e-3, target_modules=("all-linear",)),
                            eval_items=None, goqa_items=None,
                            splits=("valid", "test_populations", "test_both"))},
    data_files=lambda budget: (), build_splits=toy_splits,
    splits=split_table(("train", "valid", "test_populations", "test_both"),
                       {"valid": TOY_VALID}),
    note=lambda splits: f"toy data: {len(splits['train'])} training items")


def test_a_toy_study_runs_end_to_end_once_registered(tmp_path, tiny_model_dir, monkeypatch,
                                                     capsys):
    from surveytune.cli.main import main, report

    monkeypatch.setitem(registry.STUDIES, "toy", __name__)  # the one line a new study adds
    data = tmp_path / "data"
    data.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_jsonl(synthetic_items(n_questions=6), data / TOY_FILE)
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["surveytune", "reproduce", "--study", "toy", "--budget",
                                      "tiny", "--data-dir", str(data), "--out", str(out),
                                      "--model", str(tiny_model_dir)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["study"] == "toy" and results["note"] == "toy data: 8 training items"
    assert [r["split"] for r in results["results"]][::8] == ["valid", "test_populations",
                                                             "test_both"]
    assert results["subpop_wd"] == [] and results["language_pairs"] == []
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert f"| valid | {TOY_VALID} |" in markdown
    assert "| test_both | unseen populations and questions |" in markdown
    assert "Study `toy`: toy data: 8 training items" in markdown
    assert "Paper Table 4" not in markdown and "Wasserstein" not in markdown
    # `surveytune report` finds the study by the name results.json records
    (out / "results.md").unlink()
    report(out)
    assert f"| valid | {TOY_VALID} |" in (out / "results.md").read_text(encoding="utf-8")
    capsys.readouterr()


def test_an_unknown_study_names_the_registered_ones():
    with pytest.raises(DataError, match="unknown study 'toy'; choose one of wvs, gss"):
        registry.get_study("toy")


def test_a_study_split_outside_the_split_table_is_refused():
    with pytest.raises(ValueError, match="'dev' is not in surveytune.data.split_names"):
        split_table(("train", "dev"))
