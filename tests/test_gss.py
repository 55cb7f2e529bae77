"""The GSS subgroup study: splits, prompts, the SubPOP-comparable metric, and a tiny study."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import data_dir
from scipy.stats import wasserstein_distance

from surveytune.data.items import DataError, make_item
from surveytune.data.splits import GSS_SPLITS, gss_splits, held_out_groups
from surveytune.methods.metrics import item_metrics, subpop_wd, subpop_wd_mean
from surveytune.methods.prompts import SUBGROUP_EN, build_prompt, subgroup_phrase, template_for
from surveytune.studies import gss
from surveytune.studies.runner import Budget, Study
from surveytune.training.recipe import TrainConfig

GROUPS = {"POLPARTY": ("Democrat", "Republican"), "SEX": ("Male", "Female"),
          "RACE": ("Black", "White", "Asian")}


def gss_item(attribute: str, group: str, q: int, dist, ordinal: bool = True):
    return make_item(survey="gss2022", question_id=f"q{q}", question=f"Question {q}?",
                     options=[f"option {j}" for j in range(len(dist))], distribution=dist,
                     population=f"{attribute}: {group}", population_kind="subgroup",
                     ordinal=ordinal)


def synthetic_gss(n_questions: int = 10, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [gss_item(a, g, q, rng.dirichlet(np.ones(2 + q % 3)).tolist(), ordinal=q % 2 == 0)
            for q in range(n_questions) for a, groups in GROUPS.items() for g in groups]


def _check_holdout(splits) -> None:
    train_groups = {i.population for i in splits["train"]}
    train_questions = {i.question_id for i in splits["train"]}
    valid_questions = {i.question_id for i in splits["valid"]}
    held = set(held_out_groups(splits))
    test_questions = {i.question_id for i in splits["test_questions"]}
    assert held and not held & train_groups
    assert not test_questions & (train_questions | valid_questions)
    assert not valid_questions & train_questions
    assert {i.population for i in splits["valid"]} <= train_groups
    assert {i.population for i in splits["test_questions"]} <= train_groups
    assert {i.population for i in splits["test_groups"]} == held
    assert {i.question_id for i in splits["test_groups"]} <= train_questions
    assert {i.population for i in splits["test_both"]} == held
    assert {i.question_id for i in splits["test_both"]} == test_questions
    for name, items in splits.items():
        assert all(i.split == name for i in items)
    # at most one held-out group per attribute: every attribute keeps a training group
    attributes = [p.partition(": ")[0] for p in held]
    assert len(attributes) == len(set(attributes))
    assert {p.partition(": ")[0] for p in train_groups} == {
        i.population.partition(": ")[0] for items in splits.values() for i in items}


def test_gss_splits_hold_out_groups_and_questions():
    items = synthetic_gss()
    splits = gss_splits(items, held_groups=2, seed=3)
    assert tuple(splits) == GSS_SPLITS
    _check_holdout(splits)
    assert len(held_out_groups(splits)) == 2
    # seeded and independent of the items' order
    again = gss_splits(list(reversed(items)), held_groups=2, seed=3)
    assert held_out_groups(again) == held_out_groups(splits)
    assert ({i.id for i in again["test_both"]} == {i.id for i in splits["test_both"]})
    with pytest.raises(DataError, match="at most one"):
        gss_splits(items, held_groups=4)


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_gss_splits_on_the_real_file():
    from surveytune.data.loaders import find_data_file, load_gss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = load_gss(find_data_file(data_dir(), "subpop-gss"))
    splits = gss_splits(items)
    _check_holdout(splits)
    assert len(held_out_groups(splits)) == 6
    assert len({i.question_id for i in splits["train"]}) == 93
    assert len({i.question_id for i in splits["valid"]}) == 13
    assert len({i.question_id for i in splits["test_questions"]}) == 27
    assert len(splits["train"]) == 16 * 93 and len(splits["test_both"]) == 6 * 27
    assert any(i.ordinal for i in splits["test_groups"])  # emd / wd_subpop have work to do
    for item in items[:50]:  # every population gets a phrase from a template, not a fallback
        assert "whose" not in subgroup_phrase(item.population)


def test_subgroup_prompt_names_the_group():
    item = gss_item("POLPARTY", "Democrat", 1, [0.5, 0.5])
    assert template_for(item) is SUBGROUP_EN
    prompt = build_prompt(item)
    assert prompt.startswith("How would a Democrat in the United States answer")
    assert prompt.endswith("my answer would be (")
    assert "POLPARTY" not in prompt
    assert subgroup_phrase("EDUCATION: Less than high school") == (
        "someone in the United States who did not finish high school")
    assert subgroup_phrase("AGE: 65+") == "someone in the United States aged 65+"
    assert subgroup_phrase("HEIGHT: Tall") == "someone in the United States whose height is Tall"


def test_subpop_wd_hand_computed():
    # all mass moves from the first to the last of 3 options: the whole range, 1
    assert subpop_wd([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0)
    # half the mass moves one step of 2: 0.5 * 1 / 2
    assert subpop_wd([0.5, 0.5, 0], [0, 1, 0]) == pytest.approx(0.25)
    # [.2,.3,.5] vs [.5,.3,.2] on 0,1,2: CDFs .2,.5 vs .5,.8 -> (.3 + .3) / 2 = .3
    assert subpop_wd([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    # SubPOP-style codes 1, 2, 1.5 ("Depends" in the middle): .5 moves from 1 to 1.5, over 1
    assert subpop_wd([0.5, 0, 0.5], [0, 0, 1], support=[1, 2, 1.5]) == pytest.approx(0.25)
    # the same as scipy's on positions, and as our emd on an item without off-scale options
    p, q = [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]
    assert subpop_wd(p, q) == pytest.approx(wasserstein_distance(range(4), range(4), p, q) / 3)
    assert subpop_wd(p, q) == pytest.approx(item_metrics(p, q)["emd"])
    with pytest.raises(ValueError):
        subpop_wd([0.5, 0.5], [1.0, 0.1])
    with pytest.raises(ValueError, match="support"):
        subpop_wd([0.5, 0.5], [0.5, 0.5], support=[1, 1])


def test_subpop_wd_mean_counts_ordinal_items_only():
    items = [gss_item("SEX", "Male", 0, [1, 0, 0]), gss_item("SEX", "Male", 1, [1, 0, 0],
                                                              ordinal=False)]
    value, n = subpop_wd_mean(items, [[0, 0, 1], [0, 0, 1]])
    assert (value, n) == (pytest.approx(1.0), 1)
    assert subpop_wd_mean(items[1:], [[0, 0, 1]]) == (None, 0)


def make_gss_dir(root):
    folder = root / "subpop_eval_gss"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for q in range(12):
        k = 2 + q % 3
        for attribute, groups in GROUPS.items():
            for group in groups:
                rows.append({"qkey": f"q{q}", "attribute": attribute, "group": group,
                             "question": f"Synthetic question {q}?",
                             "options": [f"answer {j}" for j in range(k)] + ["Refused"],
                             "ordinal": [float(j + 1) for j in range(k)],
                             "responses": rng.dirichlet(np.ones(k)).tolist(),
                             "refusal_rate": 0.0})
    (folder / "subpop_eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


TINY_GSS = Budget("tiny-gss", "test budget",
                  TrainConfig(max_steps=3, batch_size=4, eval_every=3, learning_rate=5e-3,
                              target_modules=("all-linear",)),
                  eval_items=None, goqa_items=None,
                  splits=("valid", "test_questions", "test_groups", "test_both"))


def test_gss_study_end_to_end(tmp_path, tiny_model_dir, monkeypatch):
    data = make_gss_dir(tmp_path / "data")
    # 7 groups in 3 attributes: hold out 2 groups (the real study holds out 6 of 22)
    monkeypatch.setattr(gss, "HELD_GROUPS", 2)
    out = tmp_path / "run"
    results = Study(out, data, budget=TINY_GSS, model=str(tiny_model_dir), study="gss",
                    log=lambda m: None).run()
    methods = {r["method"] for r in results["results"]}
    assert methods == {"uniform", "group-mean", "population-style", "country-mean-loo",
                       "ceiling", "zero-shot", "fine-tuned"}
    assert {r["split"] for r in results["results"]} == set(TINY_GSS.splits)
    assert results["study"] == "gss"
    wd = {(w["split"], w["method"]): w for w in results["subpop_wd"]}
    assert ("test_groups", "fine-tuned") in wd and ("test_both", "group-mean") in wd
    row = wd[("test_both", "uniform")]
    assert row["n_ordinal"] > 0 and 0 < row["wd_subpop"] < 1
    # the figure is the mean emd over the ordinal items (all items are ordinal here)
    uniform = next(r for r in results["results"]
                   if r["method"] == "uniform" and r["split"] == "test_both")
    assert row["wd_subpop"] == pytest.approx(uniform["emd"])
    markdown = (out / "results.md").read_text()
    assert "SubPOP-comparable Wasserstein distance" in markdown
    assert "region-mean" not in markdown and "country-mean |" not in markdown
    assert "Paper Table 4" not in markdown and "group-mean" in markdown
    assert (out / "report.html").exists()
    scored = {json.loads(line)["population"] for line in
              (out / "predictions" / "zero-shot" / "test_groups.jsonl").read_text().splitlines()}
    trained = {json.loads(line)["population"] for line in
               (out / "predictions" / "zero-shot" / "test_questions.jsonl").read_text()
               .splitlines()}
    assert len(scored) == 2 and not scored & trained
    assert all(group in results["note"] for group in scored)


def test_gss_budgets_score_only_test_splits_below_full():
    for name in ("quick", "default"):
        assert "valid" not in gss.BUDGETS[name].splits
        assert set(gss.BUDGETS[name].splits) == {"test_questions", "test_groups", "test_both"}
    assert "valid" in gss.BUDGETS["full"].splits


def test_unknown_study_is_refused(tmp_path):
    with pytest.raises(DataError, match="unknown study"):
        Study(tmp_path, tmp_path, study="pew")
    with pytest.raises(DataError, match="unknown budget"):
        Study(tmp_path, tmp_path, budget="huge", study="gss")


def test_cli_study_flag(tmp_path, monkeypatch, capsys):
    import sys

    from surveytune.cli.main import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["surveytune", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return exit_info.value.code, capsys.readouterr().err

    code, err = run("reproduce", "--study", "pew", "--out", tmp_path / "a")
    assert code == 2 and err.startswith("error: --study: must be one of wvs, gss")
    code, err = run("reproduce", "--recipe", "lora", "--out", tmp_path / "a")
    assert code == 2 and err.startswith("error: --recipe: must be one of anchored, paper")
    # the GSS study needs only the GSS file: the WVS files are not asked for
    code, err = run("reproduce", "--study", "gss", "--data-dir", tmp_path / "empty",
                    "--out", tmp_path / "b")
    assert code == 2 and "'subpop-gss' data file" in err
    assert not (tmp_path / "b").exists()
