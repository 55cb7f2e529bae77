"""A researcher's own questionnaire from the command line and the Python API: batch prediction
into a long-form table, evaluation beside baselines with paired intervals, and warnings when
the model does not know."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from conftest import synthetic_items

from surveytune.cli.main import main
from surveytune.data.files import write_jsonl

COUNTRIES = ("Egypt", "Sweden", "Japan", "Peru")


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["surveytune", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.fixture
def questionnaire(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question_id,question,option\n"
                    "god,How important is God in your life?,Very\n"
                    "god,How important is God in your life?,Rather\n"
                    "god,How important is God in your life?,Not at all\n"
                    "trust,Can most people be trusted?,Yes\n"
                    "trust,Can most people be trusted?,No\n", encoding="utf-8")
    return path


def test_predict_a_questionnaire_for_countries_and_a_subgroup(monkeypatch, capsys, tmp_path,
                                                               tiny_model_dir, questionnaire):
    out_file = tmp_path / "p.csv"
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--questions", questionnaire, "--population", "Egypt",
                             "--population", "POLPARTY: Democrat", "--out", out_file)
    assert code == 0, err
    table = pd.read_csv(out_file)
    assert list(table.columns) == ["survey", "question_id", "question", "population",
                                   "population_kind", "option", "letter", "share",
                                   "letter_mass", "method", "model"]
    assert len(table) == (3 + 2) * 2  # options x populations
    shares = table.groupby(["question_id", "population"])["share"].sum()
    assert shares.to_numpy() == pytest.approx(1.0)
    assert set(table["population_kind"]) == {"country", "subgroup"}
    assert set(table["method"]) == {"zero-shot"}
    assert "How important is God in your life?" in out and "wrote 10 rows" in out


def test_populations_from_a_file_and_its_bad_line(monkeypatch, capsys, tmp_path, tiny_model_dir,
                                                  questionnaire):
    people = tmp_path / "people.txt"
    people.write_text("# who\nEgypt\nSE\n", encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--questions", questionnaire, "--populations", people, "--json")
    assert code == 0, err
    assert {r["population"] for r in json.loads(out)} == {"Egypt", "Sweden"}
    people.write_text("Egypt\nGermnay\n", encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--questions", questionnaire, "--populations", people)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{people}:2: unknown population 'Germnay'; did you mean 'Germany'?" in err


@pytest.mark.parametrize(("args", "words"), [
    (["--questions", "Q", "--population", "Egypt", "--out", "p.xlsx"],
     "--out: write the table as .csv, .jsonl, .parquet"),
    (["--questions", "Q", "--question", "Q?", "--population", "Egypt"],
     "--questions: give --questions FILE or --question with --option, not both"),
    (["--question", "Q?", "--population", "Egypt"],
     "--question: give --questions FILE, or --question with its --option values"),
    (["--questions", "Q"], "--population: name at least one population"),
    (["--question", "Q?", "--option", "a", "--population", "Egypt"], "--option:"),
])
def test_bad_predict_requests_fail_before_any_model(monkeypatch, capsys, tmp_path,
                                                    questionnaire, args, words):
    args = [questionnaire if a == "Q" else tmp_path / a if a.endswith(".xlsx") else a
            for a in args]
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tmp_path / "nothing",
                             *args)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert words in err


def test_evaluate_prints_the_baselines_with_intervals_and_warns(monkeypatch, capsys, tmp_path,
                                                                tiny_model_dir):

    mine = tmp_path / "mine.jsonl"
    past = tmp_path / "past.jsonl"
    items = synthetic_items(n_questions=6, populations=COUNTRIES)
    write_jsonl([i for i in items if i.population != "Peru"], past)
    write_jsonl([i for i in items if i.population in ("Peru", "Japan")], mine)
    monkeypatch.setenv("COLUMNS", "160")  # the table on one line per row
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--model", tiny_model_dir,
                             "--data", mine, "--reference", past, "--out", tmp_path / "ev")
    assert code == 0, err
    for name in ("zero-shot", "uniform", "country-mean", "region-mean", "country-mean-loo"):
        assert name in out
    assert "95% interval" in out
    payload = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    rows = {r["method"]: r for r in payload["results"]}
    assert rows["zero-shot"]["n"] == 12 and rows["zero-shot"]["questions"] == 6
    uniform = rows["uniform"]
    assert uniform["versus"] == "zero-shot" and uniform["low"] <= uniform["difference"]
    assert uniform["difference"] <= uniform["high"]
    assert uniform["verdict"] in ("met", "tied", "missed")
    assert uniform["difference"] == pytest.approx(rows["zero-shot"]["1-jsd"] - uniform["1-jsd"])
    assert payload["reference"] == str(past)
    # a random tiny model says nearly the same for every population
    assert "warning: question" in err and "what would help" in err


def test_the_python_api_hands_back_tables(tiny_model_dir, questionnaire):

    from surveytune import Simulator

    sim = Simulator.load(str(tiny_model_dir))
    frame = sim.predict_frame(questionnaire, ["Egypt", "DE"], progress=False)
    assert set(frame["population"]) == {"Egypt", "Germany"} and len(frame) == 10
    items = synthetic_items(n_questions=3, populations=COUNTRIES)
    table = sim.evaluate({"mine": items}, progress=False)
    assert list(table["method"]) == ["zero-shot", "uniform", "country-mean-loo"]
    assert table.loc[1, "verdict"] in ("met", "tied", "missed")
