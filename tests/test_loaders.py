"""Tests of surveytune.data.loaders on tiny synthetic fixtures (and the real data when present)."""

from __future__ import annotations

import json
import os
import string
import warnings
from pathlib import Path

import pytest

from surveytune.data.files import write_jsonl
from surveytune.data.items import DataError, DataWarning, make_item
from surveytune.data.loaders import (
    DATA_FILES,
    find_data_file,
    load_csv,
    load_goqa,
    load_gss,
    load_items,
    load_jsonl,
    load_paper_json,
    load_wvs_unified,
    wvs_paper_split_labels,
)

FIXTURES = Path(__file__).parent / "fixtures"


def data_dir() -> Path | None:
    env = os.environ.get("SURVEYTUNE_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path if path.is_dir() else None


def by_id(items):
    return {item.id: item for item in items}


def assert_located(exc: pytest.ExceptionInfo, path: Path, line: int | None, field: str | None):
    message = str(exc.value)
    assert path.name in message
    if line is not None:
        assert f":{line}:" in message
    if field is not None:
        assert field in message
    assert "\n" not in message


def write_lines(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def record(**changes):
    base = {"question_id": "q1", "question": "Q?", "options": ["Yes", "No"],
            "distribution": [0.5, 0.5], "population": "France"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# --------------------------------------------------------------------------- public formats

def test_wvs_unified_options_order_and_alignment():
    items = by_id(load_wvs_unified(FIXTURES / "loaders_wvs_unified.jsonl"))
    family = items["wvs7:Q1:Andorra"]
    assert family.options == ("Very important (paper)", "Not important (paper)")
    assert family.distribution == pytest.approx((0.75, 0.25))
    assert family.question == "How important is family in your life?"
    assert family.split is None and family.ordinal  # no metadata next to the fixture: True
    # code 0 (letter X) comes first and dist is aligned by letter, not by key order
    jobs = items["wvs7:Q122:Nigeria"]
    assert jobs.options == ("Disagree", "Hard to say", "Agree")
    assert jobs.distribution == pytest.approx((0.3, 0.2, 0.5))
    # empty question text falls back to the codebook label; India is kept by the loader
    assert items["wvs7:Q144:India"].question == "Victim of a crime during the past year"


def test_wvs_unified_ordinal_from_metadata(tmp_path):
    (tmp_path / "wvs7_unified").mkdir()
    (tmp_path / "wvs7_codebook_worldvaluesbench").mkdir()
    data = tmp_path / "wvs7_unified" / "w.jsonl"
    data.write_text((FIXTURES / "loaders_wvs_unified.jsonl").read_text())
    metadata = {"Q1": {"answer_data_type": "ordinal"}, "Q122": {"answer_data_type": "non_ordinal"}}
    (tmp_path / "wvs7_codebook_worldvaluesbench" / "question_metadata.json").write_text(
        json.dumps(metadata))
    items = by_id(load_wvs_unified(data))
    assert items["wvs7:Q1:Andorra"].ordinal is True
    assert items["wvs7:Q122:Nigeria"].ordinal is False
    assert items["wvs7:Q144:India"].ordinal is True  # not in metadata: default


def test_wvs_paper_split_labels():
    labels = wvs_paper_split_labels(FIXTURES / "loaders_wvs_unified.jsonl")
    assert labels == {"wvs7:Q1:Andorra": ("train",), "wvs7:Q122:Nigeria": ("test_2", "test_5"),
                      "wvs7:Q144:India": ()}


def test_paper_json_percentages_country_and_tail():
    items = load_paper_json(FIXTURES / "loaders_paper_valid.json")
    assert [i.id for i in items] == ["wvs7:Q164:Andorra", "wvs7:Q165:Great Britain"]
    god = items[0]
    assert god.question == "How important is God in your life?"
    assert god.options == ("Not at all important", "Somewhat", "Very important")
    assert god.distribution == pytest.approx((0.2, 0.3, 0.5))
    assert god.language == "en" and god.survey == "wvs7" and god.split is None
    assert items[1].source.line > god.source.line > 1  # real line numbers in an indented file


def test_paper_json_chinese():
    (item,) = load_paper_json(FIXTURES / "loaders_paper_zh.json")
    assert item.population == "Andorra" and item.language == "zh"
    assert item.question == "上帝在您的生活中有多重要?"
    assert item.options == ("一点儿也不重要", "很重要")
    assert item.distribution == pytest.approx((0.25, 0.75))


def test_paper_json_pew_fractions_and_skip():
    with pytest.warns(DataWarning, match="skipped 1 rows"):
        items = load_paper_json(FIXTURES / "loaders_paper_pew.json")
    assert [i.id for i in items] == ["goqa:347:Mexico", "goqa:347:Brazil"]
    assert items[0].distribution == pytest.approx((0.7, 0.3))


def test_paper_json_bad_country(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"id": "1", "instruction": "Answer this:", "input": "Q?",
                                 "options": ["(A)x", "(B)y"], "options_dist": {"A": 50, "B": 50}}]))
    with pytest.raises(DataError) as exc:
        load_paper_json(path)
    assert_located(exc, path, 1, "instruction")


def test_goqa_drops_wvs_and_bad_rows():
    with pytest.warns(DataWarning, match="skipped 2 rows") as caught:
        items = load_goqa(FIXTURES / "loaders_goqa.jsonl")
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 1
    assert [i.population for i in items] == ["Brazil", "Japan"]
    # the same question (up to whitespace) gets the same stable id
    assert items[0].question_id == items[1].question_id
    assert items[0].question_id.startswith("goqa-") and not items[0].ordinal
    with pytest.warns(DataWarning):
        kept = load_goqa(FIXTURES / "loaders_goqa.jsonl", drop_wvs=False)
    assert len(kept) == 3


def test_gss_drops_refused_and_ordinal():
    items = by_id(load_gss(FIXTURES / "loaders_gss.jsonl"))
    space = items["gss2022:natspac:POLPARTY: Democrat"]
    assert space.options == ("Too little", "About right", "Too much")
    assert space.distribution == pytest.approx((0.2, 0.5, 0.3))
    assert space.population_kind == "subgroup" and space.ordinal
    assert not items["gss2022:abany:SEX: Female"].ordinal  # codes 1, 2, 1.5: not monotone


def test_gss_refuses_unshared_substantive_option(tmp_path):
    row = json.loads((FIXTURES / "loaders_gss.jsonl").read_text().splitlines()[0])
    row["options"][-1] = "Sometimes"
    path = write_lines(tmp_path / "g.jsonl", [row])
    with pytest.raises(DataError) as exc:
        load_gss(path)
    assert_located(exc, path, 1, "options")


# --------------------------------------------------------------------------- generic formats

def test_generic_jsonl():
    path = FIXTURES / "loaders_generic.jsonl"
    first, second = load_jsonl(path)
    assert first.id == "my:q1:France" and first.split == "train"
    assert second.source.line == 3  # the blank line is skipped but counted
    assert second.survey == "loaders_generic" and second.id == "loaders_generic:q2:Women 18-29"
    assert second.distribution == pytest.approx((0.2, 0.5, 0.3))  # percentages detected
    assert second.ordinal and second.population_kind == "custom" and second.language == "en"


def test_write_jsonl_round_trip(tmp_path):
    items = load_items(FIXTURES / "loaders_generic.csv") + load_gss(FIXTURES / "loaders_gss.jsonl")
    items.append(make_item(survey="s", question_id="q", question="问题\u2028第二行?",
                           options=["是", "否"],
                           distribution=[0.25, 0.75], population="China", language="zh",
                           split="test_both"))
    path = tmp_path / "canonical.jsonl"
    write_jsonl(items, path)
    loaded = load_items(path)
    assert [i.replace(distribution=()) for i in loaded] == [
        i.replace(distribution=()) for i in items]
    for new, old in zip(loaded, items, strict=True):
        # make_item divides by the sum again, so the last bit may differ
        assert new.distribution == pytest.approx(old.distribution, abs=1e-15)


def test_csv_grouping_and_percentages():
    items = by_id(load_csv(FIXTURES / "loaders_generic.csv"))
    assert list(items) == ["my:q1:France", "my:q1:Spain", "my:q2:France"]
    france = items["my:q1:France"]
    assert france.options == ("Yes", "No") and france.distribution == pytest.approx((0.62, 0.38))
    spain = items["my:q1:Spain"]
    # Spain's rows list No first: its options take the question's order, shares follow labels
    assert spain.options == ("Yes", "No") and spain.distribution == pytest.approx((0.55, 0.45))
    assert spain.source.line == 3
    assert items["my:q2:France"].ordinal and not france.ordinal


def test_csv_missing_column_and_cell(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("question_id,question,population,option\nq1,Q?,France,Yes\n")
    with pytest.raises(DataError) as exc:
        load_csv(path)
    assert_located(exc, path, 1, "share")
    path.write_text("question_id,question,population,option,share\n"
                    "q1,Q?,France,Yes,0.5\nq1,Q?,,No,0.5\n")
    with pytest.raises(DataError) as exc:
        load_csv(path)
    assert_located(exc, path, 3, "population")


def test_csv_bad_share_names_its_own_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("question_id,question,population,option,share\n"
                    "q1,Q?,France,Yes,0.5\nq1,Q?,France,No,-0.5\n")
    with pytest.raises(DataError, match="negative") as exc:
        load_csv(path)
    assert_located(exc, path, 3, "share")


@pytest.mark.parametrize("changes, field, match", [
    ({"distribution": [1.2, -0.2]}, "distribution", "negative"),
    ({"distribution": [float("nan"), 0.5]}, "distribution", "nan"),
    ({"distribution": [0.5, 0.3, 0.2]}, "distribution", "3 probabilities for 2 options"),
    ({"distribution": [0.5, 0.2]}, "distribution", "sums to"),
    ({"population": None}, "population", "missing"),
    ({"question": None}, "question", "missing"),
    ({"options": list(string.ascii_letters[:27]), "distribution": [1 / 27] * 27}, "options",
     "27 options"),
    ({"ordinal": "yes"}, "ordinal", "true or false"),
])
def test_jsonl_bad_records(tmp_path, changes, field, match):
    path = write_lines(tmp_path / "bad.jsonl", [record(population="Spain"), record(**changes)])
    with pytest.raises(DataError, match=match) as exc:
        load_items(path)
    assert_located(exc, path, 2, field)


def test_slightly_off_sum_is_renormalised(tmp_path):
    path = write_lines(tmp_path / "off.jsonl", [record(distribution=[0.51, 0.51])])
    with pytest.warns(DataWarning, match="off.jsonl:1"):
        (item,) = load_items(path)
    assert sum(item.distribution) == pytest.approx(1.0, abs=1e-12)
    assert item.distribution == pytest.approx((0.5, 0.5))


def test_duplicate_ids(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", [record(), record(), record(population="X")])
    with pytest.raises(DataError, match="duplicate") as exc:
        load_items(path)
    assert_located(exc, path, 2, "id")
    assert "dup.jsonl:1" in str(exc.value)


def test_invalid_json_line(tmp_path):
    path = write_lines(tmp_path / "broken.jsonl", [record(), '{"question_id": "q2",'])
    with pytest.raises(DataError, match="invalid JSON") as exc:
        load_items(path)
    assert_located(exc, path, 2, None)


def test_invalid_json_list(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": "1"},\n  {"id": \n]\n')
    with pytest.raises(DataError, match="invalid JSON") as exc:
        load_items(path)
    assert_located(exc, path, 4, None)


def test_missing_file_and_unknown_format(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(DataError, match="not found") as exc:
        load_items(missing)
    assert_located(exc, missing, None, None)
    with pytest.raises(DataError, match="not found"):
        load_jsonl(missing)
    path = write_lines(tmp_path / "ok.jsonl", [record()])
    with pytest.raises(DataError, match="unknown format 'xml'") as exc:
        load_items(path, format="xml")
    assert_located(exc, path, None, None)
    odd = tmp_path / "data.txt"
    odd.write_text("x")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_items(odd)


@pytest.mark.parametrize("name, survey", [
    ("loaders_wvs_unified.jsonl", "wvs7"), ("loaders_goqa.jsonl", "goqa"),
    ("loaders_gss.jsonl", "gss2022"), ("loaders_paper_valid.json", "wvs7"),
    ("loaders_generic.jsonl", "my"), ("loaders_generic.csv", "my"),
])
def test_auto_detection(name, survey):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        items = load_items(FIXTURES / name)
    assert items[0].survey == survey


def test_find_data_file(tmp_path):
    with pytest.raises(DataError, match="missing") as exc:
        find_data_file(tmp_path, "wvs-unified")
    assert "wvs7_country_distributions.jsonl" in str(exc.value)
    target = tmp_path / DATA_FILES["subpop-gss"]
    target.parent.mkdir()
    target.write_text("")
    assert find_data_file(tmp_path, "subpop-gss") == target
    with pytest.raises(DataError, match="unknown data file"):
        find_data_file(tmp_path, "nope")


def test_real_data_loads_without_error():
    root = data_dir()
    if root is None:
        pytest.skip("no shared data directory")
    expected = {"wvs-unified": 11275, "goqa": 10008, "subpop-gss": 2926, "paper-valid": 1586,
                "paper-valid-zh": 1586, "paper-pew": 3982}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        counts = {name: len(load_items(find_data_file(root, name))) for name in expected}
    assert counts == expected


@pytest.mark.parametrize(("delimiter", "share"), [(";", "0,25"), ("\t", "0.25"), (";", "25")])
def test_csv_separated_by_semicolons_or_tabs(tmp_path, delimiter, share):
    """Spreadsheets in many locales export ";" with decimal commas; both are read."""
    rows = [["question_id", "question", "population", "option", "share"],
            ["q1", "Trust, really?", "Kenya", "Yes", share],
            ["q1", "Trust, really?", "Kenya", "No", share.replace("25", "75")]]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n", encoding="utf-8")
    (item,) = load_csv(path)
    assert item.question == "Trust, really?" and item.options == ("Yes", "No")
    assert item.distribution == pytest.approx((0.25, 0.75))


def test_csv_options_take_the_question_order_whatever_population_comes_first(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("question_id,question,population,option,share\n"
                    "q,Q?,Kenya,No,40\nq,Q?,Kenya,Yes,60\n"
                    "q,Q?,Chad,Yes,70\nq,Q?,Chad,No,30\n", encoding="utf-8")
    kenya, chad = load_csv(path)
    assert kenya.options == chad.options == ("No", "Yes")
    assert kenya.distribution == pytest.approx((0.4, 0.6))
    assert chad.distribution == pytest.approx((0.3, 0.7))


def test_a_new_format_is_one_loader_and_one_registry_line(tmp_path, monkeypatch):
    """A toy "one line per item" format: question|population|share of the first of 2 options."""
    from surveytune.data import loaders

    def load_pipes(path):
        items = []
        for line in Path(path).read_text().splitlines():
            question, population, share = line.split("|")
            items.append(make_item(survey="pipes", question_id=question, question=question,
                                   options=["yes", "no"], population=population,
                                   distribution=[float(share), 1 - float(share)]))
        return items

    monkeypatch.setitem(loaders.LOADERS, "pipes", load_pipes)  # the registry line
    path = tmp_path / "answers.txt"
    path.write_text("Trust?|France|0.25\nTrust?|Japan|0.5\n")
    items = load_items(path, format="pipes")
    assert [(i.population, i.distribution) for i in items] == [("France", (0.25, 0.75)),
                                                               ("Japan", (0.5, 0.5))]
    with pytest.raises(DataError, match="unknown format 'nope'; known: auto, jsonl, csv"):
        load_items(path, format="nope")
