"""The reproduce pipeline end to end on synthetic data and a tiny model: outputs and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surveytune.backends.precision import choose_precision
from surveytune.data.records import read_predictions
from surveytune.studies.runner import Budget, Study
from surveytune.studies.wvs import restrict_to_questions, study_splits
from surveytune.training.recipe import TrainConfig

COUNTRIES = ("Andorra", "Argentina", "Kenya", "Mexico")  # C1, C1, C2, C3
QIDS = (1, 2, 3, 164, 165, 199, 200)  # Q1 (train), Q2 (valid), Q3


def make_data_dir(root):
    rng = np.random.default_rng(0)
    wvs = root / "wvs7_unified" / "wvs7_country_distributions.jsonl"
    wvs.parent.mkdir(parents=True)
    lines = []
    for country in COUNTRIES:
        for qid in QIDS:
            k = 2 + qid % 3
            dist = rng.dirichlet(np.ones(k))
            letters = "ABCDE"[:k]
            lines.append({"country": country, "qid": qid,
                          "options": [{"code": i + 1, "letter": L, "label": f"answer {L}"}
                                      for i, L in enumerate(letters)],
                          "dist": dict(zip(letters, dist.tolist())),
                          "in_paper_country_list": True, "paper_splits": [],
                          "excluded_in_paper": False, "codebook_label": f"Q{qid}",
                          "question_text": f"Synthetic question {qid}?"})
    wvs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    goqa = root / "goqa_partial" / "goqa_union_question_country.jsonl"
    goqa.parent.mkdir(parents=True)
    rows = [{"question": f"Pew question {q}?", "country": c, "options": ["Yes", "No"],
             "dist": [0.3 + 0.1 * q, 0.7 - 0.1 * q], "survey_guess": "GAS(Pew)"}
            for q in range(3) for c in ("Brazil", "Japan")]
    rows.append({"question": "A WVS row", "country": "Japan", "options": ["a", "b"],
                 "dist": [0.5, 0.5], "survey_guess": "WVS"})
    goqa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


TINY = Budget("tiny", "test budget",
              TrainConfig(max_steps=4, batch_size=4, eval_every=2, learning_rate=5e-3,
                          target_modules=("all-linear",), checkpoint_every=2),
              eval_items=None, goqa_items=None,
              splits=("valid", "test_1", "test_2", "test_5", "goqa"), order_probe_items=4)


def test_reproduce_writes_results_and_resumes(tmp_path, tiny_model_dir):
    data = make_data_dir(tmp_path / "data")
    out = tmp_path / "run"
    messages: list[str] = []
    results = Study(out, data, budget=TINY, model=str(tiny_model_dir),
                    log=messages.append).run()
    methods = {r["method"] for r in results["results"]}
    assert methods == {"uniform", "country-mean", "region-mean", "population-style",
                       "country-mean-loo", "ceiling", "zero-shot", "fine-tuned"}
    assert {r["split"] for r in results["results"]} == set(TINY.splits)
    goqa = [r for r in results["results"] if r["split"] == "goqa" and r["method"] == "zero-shot"]
    assert goqa[0]["n"] == 6  # the WVS row of GOQA is removed
    # every model against every competitor, and fine-tuned against zero-shot, with intervals
    pairs = {(c["split"], c["method"], c["versus"]): c for c in results["comparisons"]}
    assert set(pairs) == {(s, m, v) for s in TINY.splits for m in ("zero-shot", "fine-tuned")
                          for v in ("uniform", "country-mean", "region-mean", "population-style",
                                    *(["zero-shot"] if m == "fine-tuned" else []))}
    one = pairs[("goqa", "fine-tuned", "uniform")]
    assert one["n"] == 6 and one["low"] <= one["difference"] <= one["high"]
    assert one["verdict"] in ("met", "tied", "missed")
    for name in ("results.json", "results.md", "report.html", "baselines.json", "run.json",
                 "train/adapter/adapter_model.safetensors",
                 "predictions/zero-shot/test_2.jsonl", "predictions/fine-tuned/goqa.jsonl"):
        assert (out / name).exists(), name
    markdown = (out / "results.md").read_text()
    assert "Paper Table 4 layout" in markdown and "| fine-tuned | this run |" in markdown
    diversity = {(d["split"], d["method"]) for d in results["diversity"]}
    assert ("valid", "human") in diversity and ("valid", "fine-tuned") in diversity
    assert ("test_2", "region-mean") in diversity and ("test_2", "uniform") in diversity
    order = {o["method"]: o for o in results["order_consistency"]}
    assert set(order) == {"zero-shot", "fine-tuned"} and order["zero-shot"]["n"] == 4
    assert 0 <= order["fine-tuned"]["top_option_agreement"] <= 1
    # The options as given are valid's own predictions, not scored again.
    for method in ("zero-shot", "fine-tuned"):
        valid = {r.id: r for r in read_predictions(out / "predictions" / method / "valid.jsonl")}
        given = read_predictions(out / "predictions" / method / "order-probe.jsonl")
        assert len(given) == 4 and all(r.predicted == valid[r.id].predicted for r in given)
    assert "Option order" in markdown and "top option unchanged" in markdown
    assert "| test_2 | region-mean |" in markdown  # diversity of the baselines
    # The precision the hardware chose is recorded: training's and scoring's.
    chosen = choose_precision("auto", "cpu")
    assert results["precision"]["training"] == chosen.to_dict()
    assert results["precision"]["scoring"]["used"] == "float32"
    assert f"training {chosen.used} (auto: " in markdown

    # A second call resumes: nothing is recomputed, outputs stay the same.
    stamp = (out / "predictions" / "fine-tuned" / "test_2.jsonl").stat().st_mtime_ns
    messages.clear()
    again = Study(out, data, budget=TINY, model=str(tiny_model_dir), log=messages.append).run()
    assert any("resuming" in m for m in messages)
    assert (out / "predictions" / "fine-tuned" / "test_2.jsonl").stat().st_mtime_ns == stamp
    assert again["results"] == results["results"]


def test_interrupted_scoring_resumes_where_it_stopped(tmp_path, tiny_model_dir):
    data = make_data_dir(tmp_path / "data")
    out = tmp_path / "run"
    Study(out, data, budget=TINY, model=str(tiny_model_dir), log=lambda m: None).run()
    # Simulate a run killed during fine-tuned scoring: one split's file is missing.
    (out / "predictions" / "fine-tuned" / "test_5.jsonl").unlink()
    kept = (out / "predictions" / "fine-tuned" / "test_2.jsonl").stat().st_mtime_ns
    Study(out, data, budget=TINY, model=str(tiny_model_dir), log=lambda m: None).run()
    assert (out / "predictions" / "fine-tuned" / "test_5.jsonl").exists()
    assert (out / "predictions" / "fine-tuned" / "test_2.jsonl").stat().st_mtime_ns == kept


def test_other_budget_in_same_folder_is_refused(tmp_path, tiny_model_dir):
    from surveytune.data.items import DataError

    data = make_data_dir(tmp_path / "data")
    out = tmp_path / "run"
    (out).mkdir()
    Study(out, data, budget=TINY, model=str(tiny_model_dir), log=lambda m: None
          )._check_or_write_run_info({"valid": []}, {"valid": []})
    other = Budget("other", "x", TrainConfig(max_steps=1), None, None)
    with pytest.raises(DataError, match="another budget"):
        Study(out, data, budget=other, model=str(tiny_model_dir), log=lambda m: None
              )._check_or_write_run_info({"valid": []}, {"valid": []})


def test_question_fraction_restricts_every_wvs_split_to_the_same_questions(tmp_path):
    data = make_data_dir(tmp_path / "data")
    splits = study_splits(data)
    small = restrict_to_questions(splits, 0.5)
    kept = {i.question_id for name, items in small.items() if name != "goqa" for i in items}
    assert len(kept) < len({i.question_id for n, v in splits.items() if n != "goqa" for i in v})
    # test_2 (C2 x Q1) keeps exactly the train questions that were kept
    assert ({i.question_id for i in small["test_2"]}
            == {i.question_id for i in small["train"]})
    assert small["goqa"] == splits["goqa"]  # the unseen survey is sampled separately
    assert small["valid"] == splits["valid"]  # valid only chooses the checkpoint


def add_chinese_valid(root):
    """The paper's Chinese valid file for the synthetic valid items (C1 x Q2), one missing."""
    rows = []
    for country in ("Andorra", "Argentina"):
        for qid in (164, 165):
            if (country, qid) == ("Argentina", 165):
                continue  # a valid pair without a Chinese twin is left out
            k = 2 + qid % 3
            letters = "ABCDE"[:k]
            instruction = f"来自{country}的人会如何回答以下问题：\n\n"
            rows.append({"id": str(qid), "instruction": instruction,
                         "input": f"合成问题 {qid}?\n以下是选项：\n",
                         "options": [f"({L})回答{L}" for L in letters],
                         "options_dist": {L: 100 / k for L in letters}, "data_type": "valid"})
    path = root / "wvs7_simllm_paper" / "sft_wvs_zh_valid.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rows, ensure_ascii=False))
    return root


ZH = Budget("tiny-zh", "test budget with the Chinese valid rows",
            TrainConfig(max_steps=2, batch_size=4, eval_every=2, learning_rate=5e-3,
                        target_modules=("all-linear",)),
            eval_items=None, goqa_items=None, splits=("valid", "valid_zh", "test_2"),
            valid_items=1)


def test_chinese_valid_is_scored_paired_with_english(tmp_path, tiny_model_dir):
    data = add_chinese_valid(make_data_dir(tmp_path / "data"))
    splits = study_splits(data, chinese_valid=True)
    assert len(splits["valid_zh"]) == 3 and all(i.language == "zh" for i in splits["valid_zh"])
    out = tmp_path / "run"
    results = Study(out, data, budget=ZH, model=str(tiny_model_dir), log=lambda m: None).run()
    english = [json.loads(x) for x in
               (out / "predictions" / "zero-shot" / "valid.jsonl").read_text().splitlines()]
    chinese = [json.loads(x) for x in
               (out / "predictions" / "zero-shot" / "valid_zh.jsonl").read_text().splitlines()]
    # valid_items=1 samples one whole question of valid; valid_zh holds its Chinese twins
    assert len({r["question_id"] for r in english}) == 1
    assert ({(r["population"], r["question_id"]) for r in chinese}
            <= {(r["population"], r["question_id"]) for r in english})
    assert chinese and all("合成问题" in r["question"] for r in chinese)
    rows = {(r["method"], r["split"]) for r in results["results"]}
    assert {("zero-shot", "valid_zh"), ("fine-tuned", "valid_zh"),
            ("fine-tuned", "valid")} <= rows
    pairs = results["language_pairs"]
    assert pairs and {"zero-shot en", "zero-shot zh", "fine-tuned zh 1-jsd"} <= set(pairs[0])
    markdown = (out / "results.md").read_text()
    assert "English vs Chinese prompts on valid" in markdown
    assert "| valid_zh |" in markdown  # the row next to valid in the splits table


def test_chinese_valid_needs_valid_first(tmp_path):
    from surveytune.data.items import DataError

    alone = Budget("zh-alone", "x", TrainConfig(max_steps=1), None, None,
                   splits=("valid_zh", "valid"))
    with pytest.raises(DataError, match="valid must come before"):
        Study(tmp_path, tmp_path, budget=alone)
