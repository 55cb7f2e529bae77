"""Tests of surveytune.data.splits: the paper's split rules and user-defined hold-outs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from surveytune.data.items import DataError, make_item
from surveytune.data.loaders import (
    find_data_file,
    load_items,
    load_wvs_unified,
    wvs_paper_split_labels,
)
from surveytune.data.split_names import SPLIT_TABLE
from surveytune.data.splits import (
    C1,
    C2,
    C3,
    EXCLUDED_QIDS,
    PAPER_COUNTRIES,
    PAPER_SPLITS,
    build_paper_splits,
    holdout_splits,
    paper_split_names,
    sample_questions,
    select_splits,
)

PAPER_COUNTS = {"train": 6841, "valid": 1586, "test_1": 645, "test_2": 600, "test_3": 140,
                "test_4": 240, "test_5": 599, "test_6": 140, "test_7": 240}


def data_dir() -> Path | None:
    env = os.environ.get("SURVEYTUNE_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path if path.is_dir() else None


def wvs(country: str, qid: int, survey: str = "wvs7"):
    return make_item(survey=survey, question_id=f"Q{qid}", question=f"Question {qid}?",
                     options=["Yes", "No"], distribution=[0.4, 0.6], population=country)


def grid(populations, questions):
    return [make_item(survey="s", question_id=q, question=f"{q}?", options=["a", "b"],
                      distribution=[0.5, 0.5], population=p)
            for p in populations for q in questions]


def test_country_sets():
    assert len(PAPER_COUNTRIES) == 90 and "India" not in PAPER_COUNTRIES
    assert C2 & C3 == {"Nigeria", "Morocco"}
    assert C1.isdisjoint(C2 | C3) and C1 | C2 | C3 == PAPER_COUNTRIES
    assert EXCLUDED_QIDS == {82, 223, *range(94, 106)}
    assert set(PAPER_SPLITS) <= set(SPLIT_TABLE)


@pytest.mark.parametrize("country, qid, expected", [
    ("Andorra", 1, ("train",)),
    ("Andorra", 163, ("train",)),
    ("Andorra", 164, ("valid",)),
    ("Andorra", 199, ("test_1",)),
    ("Kenya", 10, ("test_2",)),
    ("Kenya", 170, ("test_3",)),
    ("Kenya", 259, ("test_4",)),
    ("Mexico", 10, ("test_5",)),
    ("Mexico", 198, ("test_6",)),
    ("Mexico", 200, ("test_7",)),
    ("Nigeria", 1, ("test_2", "test_5")),
    ("Morocco", 250, ("test_4", "test_7")),
    ("Andorra", 82, ()),
    ("Nigeria", 100, ()),
    ("Andorra", 223, ()),
    ("India", 1, ()),
    ("Andorra", 260, ()),
])
def test_paper_split_names(country, qid, expected):
    assert paper_split_names(country, qid) == expected


def test_build_paper_splits():
    items = [wvs("Andorra", 1), wvs("Nigeria", 5), wvs("India", 1), wvs("Andorra", 82),
             wvs("Andorra", 1, survey="goqa"), wvs("Kenya", 164)]
    splits = build_paper_splits(items)
    assert tuple(splits) == PAPER_SPLITS
    assert [i.id for i in splits["train"]] == ["wvs7:Q1:Andorra"]
    assert [i.id for i in splits["test_2"]] == ["wvs7:Q5:Nigeria"]
    assert [i.id for i in splits["test_5"]] == ["wvs7:Q5:Nigeria"]
    assert splits["test_2"][0].split == "test_2" and splits["test_5"][0].split == "test_5"
    assert [i.id for i in splits["test_3"]] == ["wvs7:Q164:Kenya"]
    assert sum(len(v) for v in splits.values()) == 4  # India, Q82 and non-WVS left out


def test_holdout_named():
    items = grid(["France", "Spain", "Chad"], ["q1", "q2", "q3"])
    splits = holdout_splits(items, populations=["Chad"], questions=["q3"])
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 4, "test_questions": 2, "test_populations": 2, "test_both": 1}
    assert all(i.split == name for name, members in splits.items() for i in members)
    assert splits["test_both"][0].id == "s:q3:Chad"
    only_q = holdout_splits(items, questions=["q1"])
    assert set(only_q) == {"train", "test_questions"}  # empty splits are omitted


def test_holdout_fraction_is_deterministic():
    items = grid([f"P{i}" for i in range(10)], [f"q{i}" for i in range(20)])
    one = holdout_splits(items, population_fraction=0.3, question_fraction=0.25, seed=7)
    two = holdout_splits(list(reversed(items)), population_fraction=0.3,
                         question_fraction=0.25, seed=7)
    assert {k: sorted(i.id for i in v) for k, v in one.items()} == {
        k: sorted(i.id for i in v) for k, v in two.items()}
    held_pops = {i.population for i in one["test_populations"]}
    held_qs = {i.question_id for i in one["test_questions"]}
    assert len(held_pops) == 3 and len(held_qs) == 5
    other = holdout_splits(items, population_fraction=0.3, question_fraction=0.25, seed=8)
    assert ({i.population for i in other["test_populations"]} != held_pops
            or {i.question_id for i in other["test_questions"]} != held_qs)


def test_holdout_unknown_names():
    items = grid(["France", "Spain"], ["q1", "q2"])
    with pytest.raises(DataError, match="unknown population 'Atlantis'; known: 'France'"):
        holdout_splits(items, populations=["Atlantis"])
    with pytest.raises(DataError, match="unknown question 'q9'"):
        holdout_splits(items, questions=["q9"])
    with pytest.raises(DataError, match="fraction"):
        holdout_splits(items, population_fraction=1.5)


def test_select_splits():
    splits = build_paper_splits([wvs("Andorra", 1), wvs("Andorra", 170)])
    chosen = select_splits(splits, ["valid", "train"])
    assert list(chosen) == ["valid", "train"] and len(chosen["train"]) == 1
    with pytest.raises(DataError, match="unknown split 'test_9'; known: 'train'"):
        select_splits(splits, ["test_9"])


def test_real_paper_split_counts():
    root = data_dir()
    if root is None:
        pytest.skip("no shared data directory")
    path = find_data_file(root, "wvs-unified")
    items = load_wvs_unified(path)
    splits = build_paper_splits(items)
    assert {name: len(members) for name, members in splits.items()} == PAPER_COUNTS
    labels = wvs_paper_split_labels(path)
    for item in items:
        assert paper_split_names(item.population, int(item.question_id[1:])) == labels[item.id]


def test_sample_questions_is_stratified_seeded_and_shared_across_splits():
    splits = {"train": [wvs(c, q) for c in ("Andorra", "Chile") for q in range(1, 21)],
              "valid": [wvs(c, q) for c in ("Andorra", "Chile") for q in range(164, 168)],
              "test_2": [wvs("Kenya", q) for q in range(1, 21)]}
    kept = sample_questions(splits, 0.25, seed=3)
    train_q = {("wvs7", f"Q{q}") for q in range(1, 21)}
    valid_q = {("wvs7", f"Q{q}") for q in range(164, 168)}
    assert len(kept & train_q) == 5  # 25% of 20
    assert len(kept & valid_q) == 2  # the minimum per group, not round(0.25 * 4) = 1
    assert kept == sample_questions(splits, 0.25, seed=3)
    assert kept != sample_questions(splits, 0.25, seed=4)
    with pytest.raises(ValueError, match="fraction"):
        sample_questions(splits, 0.0)


def test_every_split_name_is_one_make_item_accepts():
    from surveytune.data.items import SPLITS
    from surveytune.data.splits import GSS_SPLITS, HOLDOUT_SPLITS, UNSEEN_SURVEY
    from surveytune.studies.registry import get_study, study_names

    assert SPLITS == tuple(SPLIT_TABLE)
    produced = {*PAPER_SPLITS, UNSEEN_SURVEY, *GSS_SPLITS, *HOLDOUT_SPLITS}
    for name in study_names():
        produced |= set(get_study(name).splits)
    assert produced <= set(SPLITS)
    item = grid(["P"], ["q"])[0]
    for name in produced:
        assert make_item(**{**item.to_dict(), "split": name}).split == name


@pytest.mark.parametrize("study", ["wvs", "gss"])
def test_real_study_splits_load_back_as_written(study, tmp_path):
    """Every split a study builds, written as canonical JSONL, loads back equal (the
    distributions to 1e-15: loading renormalises them again)."""
    import warnings

    from surveytune.data.files import write_jsonl
    from surveytune.data.items import DataWarning
    from surveytune.studies.registry import get_study

    root = data_dir()
    if root is None:
        pytest.skip("no shared data directory")
    spec = get_study(study)
    whole = [b for b in spec.budgets.values() if b.question_fraction is None]
    widest = max(whole, key=lambda budget: len(budget.splits))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        splits = spec.build_splits(root, widest, lambda message: None)
    assert set(widest.splits) <= set(splits) and set(splits) <= set(spec.splits)
    for name, items in splits.items():
        write_jsonl(items, tmp_path / f"{name}.jsonl")
        back = load_items(tmp_path / f"{name}.jsonl")
        assert [i.replace(distribution=o.distribution) for i, o in zip(back, items)] == items
        assert all(i.distribution == pytest.approx(o.distribution, abs=1e-15)
                   for i, o in zip(back, items)), name
