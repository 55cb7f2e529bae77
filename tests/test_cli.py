"""The command line as a user meets it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json

import pytest
from conftest import data_dir, run_cli

GOOD = {"question_id": "q1", "question": "Trust?", "options": ["Yes", "No", "Unsure"],
        "distribution": [0.5, 0.3, 0.2], "population": "France"}



def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


BAD_RECORDS = {
    "negative": ({**GOOD, "distribution": [1.2, -0.2, 0.0]}, "distribution[1]", "negative"),
    "nan": ({**GOOD, "distribution": [float("nan"), 0.5, 0.5]}, "distribution[0]", "nan"),
    "length": ({**GOOD, "distribution": [0.5, 0.5]}, "distribution", "2 probabilities for 3"),
    "far_sum": ({**GOOD, "distribution": [0.5, 0.3, 0.5]}, "distribution", "sums to 1.3"),
    "missing": ({k: v for k, v in GOOD.items() if k != "question"}, "question", "missing"),
    "too_many": ({**GOOD, "options": [f"o{i}" for i in range(27)],
                  "distribution": [1 / 27] * 27}, "options", "27 options"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_gives_one_line_with_file_line_field(monkeypatch, capsys, tmp_path, case):
    record, field, message = BAD_RECORDS[case]
    path = tmp_path / "survey.jsonl"
    write_jsonl(path, [GOOD | {"population": "Spain"}, record])
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"survey.jsonl:2: field '{field}'" in lines[0]
    assert message in lines[0].lower()


def test_duplicate_ids_name_both_lines(monkeypatch, capsys, tmp_path):
    path = tmp_path / "dup.jsonl"
    write_jsonl(path, [GOOD, {**GOOD, "distribution": [0.2, 0.3, 0.5]}])
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2
    assert "dup.jsonl:2: field 'id': duplicate id" in err and "dup.jsonl:1" in err


def test_invalid_json_and_missing_file(monkeypatch, capsys, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2 and "broken.jsonl:2" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", tmp_path / "nope.jsonl")
    assert code == 2 and "nope.jsonl" in err and "not found" in err


def test_slightly_off_sum_is_renormalised_with_a_warning(monkeypatch, capsys, tmp_path):
    path = tmp_path / "ok.jsonl"
    write_jsonl(path, [{**GOOD, "distribution": [0.5, 0.3, 0.22]}])
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", path, "--json")
    assert code == 0
    assert "warning:" in err and "renormalised" in err
    assert json.loads(out)["items"] == 1


def test_bad_csv_names_the_column(monkeypatch, capsys, tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text("question_id,question,population,option,share\n"
                    "q1,Trust?,France,Yes,60\nq1,Trust?,France,No,abc\n")
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2 and "survey.csv:3" in err and "share" in err


def test_missing_data_dir_writes_nothing(monkeypatch, capsys, tmp_path):
    out = tmp_path / "splits"
    code, _, err = run_cli(monkeypatch, capsys, "data", "splits", "--data-dir",
                           tmp_path / "no-data", "--out", out)
    assert code == 2 and "wvs7_country_distributions.jsonl" in err
    assert not out.exists()


def test_unknown_model_is_a_clear_error(monkeypatch, capsys, tmp_path):
    path = tmp_path / "s.jsonl"
    write_jsonl(path, [GOOD])
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data", path, "--out",
                           tmp_path / "o", "--model", str(tmp_path / "no-such-model"))
    assert code == 2 and "cannot load model" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_and_predict_on_tiny_model(monkeypatch, capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "test_x.jsonl"
    write_jsonl(path, [GOOD, {**GOOD, "population": "Spain"}])
    code, out, _ = run_cli(monkeypatch, capsys, "evaluate", "--data", path, "--out",
                           tmp_path / "eval", "--model", tiny_model_dir, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["results"][0]["method"] == "zero-shot"
    assert payload["results"][0]["split"] == "test_x" and payload["results"][0]["n"] == 2
    assert set(payload["results"][0]) >= {"1-jsd", "js_divergence", "emd", "emd_paper", "tv",
                                          "acc"}
    records = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(records) == 2 and 0 < json.loads(records[0])["letter_mass"] <= 1
    code, out, _ = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                           "--question", "Trust?", "--option", "Yes", "--option", "No",
                           "--country", "France", "--country", "Japan")
    assert code == 0 and "France" in out and "Japan" in out and "%" in out


def test_train_with_a_prior_then_evaluate_order_averaged(monkeypatch, capsys, tmp_path,
                                                         tiny_model_dir):
    records = [{**GOOD, "question_id": f"q{q}", "population": country,
                "distribution": [0.2 + 0.1 * q, 0.5 - 0.1 * q, 0.3]}
               for q in range(3) for country in ("France", "Spain", "Japan", "Chile")]
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    write_jsonl(train, [r for r in records if r["question_id"] != "q2"])
    write_jsonl(valid, [r for r in records if r["question_id"] == "q2"])
    code, out, err = run_cli(monkeypatch, capsys, "train", "--train", train, "--valid", valid,
                             "--out", tmp_path / "run", "--model", tiny_model_dir,
                             "--max-steps", "2", "--eval-every", "1", "--batch-size", "2",
                             "--prior", "region-mean", "--heldout-populations", "1",
                             "--select-on", "mean", "--calibrate", "--json")
    assert code == 0, err
    assert (tmp_path / "run" / "adapter" / "prior.json").exists()
    meta = json.loads((tmp_path / "run" / "adapter" / "surveytune.json").read_text())
    assert meta["train_config"]["calibrate"] is True and "calibration" in meta
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", valid, "--out",
                             tmp_path / "eval", "--model", tiny_model_dir, "--adapter",
                             tmp_path / "run" / "adapter", "--order-average", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["prior"] == "region-mean" and payload["order_average"] is True
    assert payload["results"][0]["method"] == "fine-tuned" and payload["results"][0]["n"] == 4


TRAIN_API_ONLY = {"seed": "no bound a whole number can break",
                  "calibrate": "a switch", "gradient_checkpointing": "a switch",
                  "questions_per_batch": "no flag"}


def test_train_flags_are_refused_by_the_config_table(monkeypatch, capsys, tmp_path):
    """``train`` checks no range itself: each TrainConfig parameter with a flag is refused by
    the table, in its words, the error naming the flag (``--lr`` for ``learning_rate``)."""
    import typer
    from test_training import BAD_TRAIN_VALUES

    from surveytune.cli.main import app
    from surveytune.methods.params import flag_name

    flags = {opt for param in typer.main.get_command(app).commands["train"].params
             for opt in param.opts}
    data = tmp_path / "s.jsonl"
    write_jsonl(data, [GOOD])
    for name, (value, message) in BAD_TRAIN_VALUES.items():
        if name in TRAIN_API_ONLY:
            continue
        flag = "--lr" if name == "learning_rate" else flag_name(name)
        assert flag in flags, flag
        code, out, err = run_cli(monkeypatch, capsys, "train", "--train", data, "--valid",
                                 data, "--out", tmp_path / "run", flag, str(value))
        assert (code, out, err) == (2, "", f"error: {flag}: {message}\n")
    code, _, err = run_cli(monkeypatch, capsys, "train", "--train", data, "--valid", data,
                           "--out", tmp_path / "run", "--select-on", "mean")
    assert err == ("error: --select-on: 'mean' needs --heldout-populations of at least 1, "
                   "got 0\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_baselines_reproduce_reference_numbers(monkeypatch, capsys, tmp_path):
    out = tmp_path / "b.json"
    code, stdout, err = run_cli(monkeypatch, capsys, "baselines", "--data-dir", data_dir(),
                                "--out", out, "--splits", "valid,test_2")
    assert code == 0, err
    rows = {(r["method"], r["split"]): r for r in json.loads(out.read_text())["results"]}
    assert rows[("uniform", "valid")]["1-jsd"] == pytest.approx(0.664, abs=0.002)
    assert rows[("country-mean-loo", "valid")]["1-jsd"] == pytest.approx(0.812, abs=0.002)
    assert rows[("uniform", "valid")]["n"] == 1586
    assert "country-mean" in stdout and "valid" in stdout
    code, _, err = run_cli(monkeypatch, capsys, "baselines", "--data-dir", data_dir(),
                           "--splits", "valid,test_9")
    assert code == 2 and "test_9" in err


def test_holdout_splits_and_unknown_population(monkeypatch, capsys, tmp_path):
    path = tmp_path / "survey.jsonl"
    write_jsonl(path, [{**GOOD, "population": p, "question_id": q}
                       for p in ("France", "Spain", "Chile") for q in ("q1", "q2")])
    code, out, _ = run_cli(monkeypatch, capsys, "data", "holdout", path, "--out",
                           tmp_path / "s", "--population", "Chile", "--question", "q2", "--json")
    assert code == 0
    assert json.loads(out) == {"train": 2, "test_questions": 2, "test_populations": 1,
                               "test_both": 1}
    assert len((tmp_path / "s" / "test_both.jsonl").read_text().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "data", "holdout", path, "--out",
                           tmp_path / "t", "--population", "Atlantis")
    assert code == 2 and "unknown population 'Atlantis'" in err
    assert not (tmp_path / "t").exists()
