"""A corpus of bad input and faults: each ends with exit code 2, one line on stderr naming the
file and line (or the flag) and the field, and nothing written (checked before any model)."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from surveytune.data.items import MAX_OPTION_CHARS, MAX_QUESTION_CHARS

GOOD = {"question_id": "q1", "question": "Trust?", "options": ["Yes", "No", "Unsure"],
        "distribution": [0.5, 0.3, 0.2], "population": "France"}
GOOD_LINE = json.dumps(GOOD)
CSV_HEAD = "question_id,question,population,option,share\n"
CSV_OK = "q1,Trust?,France,Yes,60\nq1,Trust?,France,No,40\n"
CSV3 = "q1,Trust?,France,Yes,50\nq1,Trust?,France,No,30\nq1,Trust?,France,Unsure,20\n"



def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def rec(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None})


# (file name, content as text or bytes, expected line, expected field, words in the message)
# line None: the file is named without a line; field None: no field applies (whole file)
DATA_CASES = {
    "empty_jsonl": ("s.jsonl", "", None, None, "no items"),
    "blank_lines_jsonl": ("s.jsonl", "\n\n  \n", None, None, "no items"),
    "empty_csv": ("s.csv", "", None, None, "no items"),
    "header_only_csv": ("s.csv", CSV_HEAD, None, None, "no items"),
    "empty_json_list": ("s.json", "[]", None, None, "no items"),
    "invalid_utf8_line3": ("s.jsonl", GOOD_LINE.encode() + b"\n\n" + b'{"question": "\xff"}\n',
                           3, None, "utf-8"),
    "invalid_utf8_csv": ("s.csv", (CSV_HEAD + CSV_OK).encode() + b"q2,Caf\xe9?,France,Yes,1\n",
                         4, None, "utf-8"),
    "inf_literal": ("s.jsonl", GOOD_LINE.replace("0.5, 0.3, 0.2", "1e999, 0.3, 0.2"), 1,
                    "distribution[0]", "too large"),
    "infinity_word": ("s.jsonl", GOOD_LINE.replace("0.5, 0.3", "Infinity, 0.3"), 1,
                      "distribution[0]", "too large"),
    "thousand_digit_int": ("s.jsonl", GOOD_LINE.replace("0.5, 0.3, 0.2", "1" + "0" * 1000
                                                        + ", 0, 0"), 1, "distribution[0]",
                           "too large"),
    "five_thousand_digits": ("s.jsonl", GOOD_LINE + "\n" + GOOD_LINE.replace(
        "0.5, 0.3, 0.2", "1" * 5000 + ", 0, 0"), 2, None, "too many digits"),
    "five_thousand_digits_json_list": ("s.json", "[\n" + '{"id": ' + "9" * 5000 + "}\n]", 2,
                                       None, "too many digits"),
    "huge_csv_share": ("s.csv", CSV_HEAD + "q1,Trust?,France,Yes,1e999\n", 2, "share", "share is"),
    "surrogate_question": ("s.jsonl", GOOD_LINE.replace('"Trust?"', '"Trust\\ud800?"'), 1,
                           "question", "surrogate"),
    "surrogate_option": ("s.jsonl", GOOD_LINE.replace('"Unsure"', '"\\udfff"'), 1,
                         "options[2]", "surrogate"),
    "surrogate_population": ("s.jsonl", GOOD_LINE.replace('"France"', '"Fr\\ud83dnce"'), 1,
                             "population", "surrogate"),
    "surrogate_question_id": ("s.jsonl", GOOD_LINE.replace('"q1"', '"q\\udc00"'), 1,
                              "question_id", "surrogate"),
    "string_probability": ("s.jsonl", rec(distribution=["0.5", 0.3, 0.2]), 1, "distribution[0]",
                           "expected a number"),
    "all_string_probabilities": ("s.jsonl", rec(distribution=["50", "30", "20"]), 1,
                                 "distribution[0]", "expected a number"),
    "bool_probability": ("s.jsonl", rec(distribution=[True, False, False]), 1,
                         "distribution[0]", "expected a number"),
    "null_probability": ("s.jsonl", rec(distribution=[0.5, None, 0.5]), 1, "distribution[1]",
                         "expected a number"),
    "dict_distribution": ("s.jsonl", rec(distribution={"a": 1}), 1, "distribution",
                          "expected a list"),
    "duplicate_options": ("s.jsonl", rec(options=["Yes", "No", "Yes"]), 1, "options",
                          "repeats"),
    "duplicate_options_spaces": ("s.jsonl", rec(options=["Yes", "No", " No "]), 1, "options",
                                 "repeats"),
    "csv_repeated_option": ("s.csv", CSV_HEAD + CSV_OK + "q1,Trust?,France,Yes,0\n", 4,
                            "option", "repeated"),
    "other_question_text": ("s.jsonl", GOOD_LINE + "\n" + rec(question="Distrust?",
                                                               population="Spain"),
                            2, "question", "s.jsonl:1"),
    "other_options": ("s.jsonl", GOOD_LINE + "\n" + rec(options=["Yes", "No", "Maybe"],
                                                         population="Spain"),
                      2, "options", "s.jsonl:1"),
    "other_option_order": ("s.jsonl", GOOD_LINE + "\n" + rec(options=["No", "Yes", "Unsure"],
                                                              population="Spain"),
                           2, "options", "s.jsonl:1"),
    "csv_other_options": ("s.csv", CSV_HEAD + CSV_OK + "q1,Trust?,Spain,Yes,50\n"
                          "q1,Trust?,Spain,Maybe,50\n", 4, "option", "s.csv:2"),
    # the population that breaks its question's option set is blamed, wherever it sits
    "csv_missing_row_first": ("s.csv", CSV_HEAD + "q1,Trust?,Kenya,Yes,60\nq1,Trust?,Kenya,No,39\n"
                              + CSV3 + CSV3.replace("France", "Japan"), 2, "option",
                              "population 'Kenya' has no row for option 'Unsure' that its other "
                              "2 populations have (e.g. at "),
    "csv_missing_row_later": ("s.csv", CSV_HEAD + CSV3 + CSV3.replace("France", "Japan")
                              + "q1,Trust?,Kenya,Yes,60\nq1,Trust?,Kenya,No,15\n", 8, "option",
                              "population 'Kenya' has no row for option 'Unsure'"),
    "csv_extra_row": ("s.csv", CSV_HEAD + CSV_OK + "q1,Trust?,Kenya,Yes,60\nq1,Trust?,Kenya,No,40"
                      "\nq1,Trust?,Kenya,Dont know,0\n" + CSV_OK.replace("France", "Japan"),
                      6, "option", "has an extra row for option 'Dont know' that its other 2 "
                      "populations lack (they have Yes, No)"),
    "csv_single_population_short": ("s.csv", CSV_HEAD + "q1,Trust?,Kenya,Yes,60\n"
                                    "q1,Trust?,Kenya,No,15\n", 2, "share",
                                    "sums to 75%, more than 5% from 100%; this question and "
                                    "population have rows for Yes, No: is a row missing?"),
    "csv_header_without_columns": ("s.csv", "a|b|c\n1|2|3\n", 1, "question_id",
                                   "separated by commas, semicolons or tabs"),
    "csv_other_question": ("s.csv", CSV_HEAD + CSV_OK + "q1,Trust me?,Spain,Yes,50\n"
                           "q1,Trust me?,Spain,No,50\n", 4, "question", "s.csv:2"),
    "unknown_split": ("s.jsonl", rec(split="testing"), 1, "split", "unknown split"),
    "unknown_language": ("s.jsonl", rec(language="fr"), 1, "language", "unknown language"),
    "csv_unknown_language": ("s.csv", CSV_HEAD.strip() + ",language\n"
                             "q1,Trust?,France,Yes,60,de\nq1,Trust?,France,No,40,de\n", 2,
                             "language", "unknown language"),
    "int_question_id": ("s.jsonl", rec(question_id=5), 1, "question_id", "expected a string"),
    "float_question_id": ("s.jsonl", rec(question_id=1.5), 1, "question_id",
                          "expected a string"),
    "bool_question_id": ("s.jsonl", rec(question_id=True), 1, "question_id",
                         "expected a string"),
    "list_question_id": ("s.jsonl", rec(question_id=["q"]), 1, "question_id",
                         "expected a string"),
    "question_too_long": ("s.jsonl", rec(question="x" * (MAX_QUESTION_CHARS + 1)), 1,
                          "question", "limit"),
    "option_too_long": ("s.jsonl", rec(options=["Yes", "No", "y" * (MAX_OPTION_CHARS + 1)]),
                        1, "options[2]", "limit"),
    "population_too_long": ("s.jsonl", rec(population="p" * (MAX_OPTION_CHARS + 1)), 1,
                            "population", "limit"),
    "ordinal_string": ("s.jsonl", rec(ordinal="yes"), 1, "ordinal", "true or false"),
    "split_number": ("s.jsonl", rec(split=3), 1, "split", "expected a string"),
    "json_list_of_numbers": ("s.json", "[\n1,\n2\n]", 2, None, "expected a json object"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file(monkeypatch, capsys, tmp_path, case):
    name, content, line, field, words = DATA_CASES[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    before = snapshot(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    where = f"{name}:{line}:" if line is not None else f"{name}:"
    assert where in lines[0], lines[0]
    if field is not None:
        assert f"field '{field}'" in lines[0], lines[0]
    assert words.lower() in lines[0].lower(), lines[0]
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- templates

TEMPLATE_OK = {"user": "From {population}: {question} {options}", "answer_prefix": " Answer: ("}
TEMPLATE_CASES = {
    "unknown_placeholder": ({**TEMPLATE_OK, "user": TEMPLATE_OK["user"] + " {country}"},
                            "user", "{country}"),
    "positional_placeholder": ({**TEMPLATE_OK, "user": TEMPLATE_OK["user"] + " {0}"},
                               "user", "{0}"),
    "missing_population": ({**TEMPLATE_OK, "user": "{question} {options}"}, "user",
                           "{population}"),
    "missing_question": ({**TEMPLATE_OK, "user": "{population} {options}"}, "user",
                         "{question}"),
    "missing_options": ({**TEMPLATE_OK, "user": "{population} {question}"}, "user",
                        "{options}"),
    "prefix_without_paren": ({**TEMPLATE_OK, "answer_prefix": " Answer:"}, "answer_prefix",
                             "("),
    "unbalanced_open": ({**TEMPLATE_OK, "user": TEMPLATE_OK["user"] + " {"}, "user", "brace"),
    "unbalanced_close": ({**TEMPLATE_OK, "user": "} " + TEMPLATE_OK["user"]}, "user", "brace"),
    "bad_conversion": ({**TEMPLATE_OK, "user": "{population!x} {question} {options}"}, "user",
                       "formatted"),
    "bad_format_spec": ({**TEMPLATE_OK, "user": "{population:d} {question} {options}"},
                        "user", "formatted"),
    "user_not_string": ({**TEMPLATE_OK, "user": 5}, "user", "expected a string"),
    "missing_prefix": ({"user": TEMPLATE_OK["user"]}, "answer_prefix", "missing"),
    "unknown_field": ({**TEMPLATE_OK, "colour": "red"}, "colour", "unknown field"),
    "option_format_unknown": ({**TEMPLATE_OK, "option_format": "{letter}) {text}"},
                              "option_format", "{text}"),
    "option_format_no_letter": ({**TEMPLATE_OK, "option_format": "- {label}"},
                                "option_format", "{letter}"),
    "a_list": ([TEMPLATE_OK], None, "json list"),
    "a_number": (42, None, "json int"),
    "invalid_json": ("{user: }", None, "invalid json"),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_CASES))
def test_bad_template_refused_before_model(monkeypatch, capsys, tmp_path, case):
    content, field, words = TEMPLATE_CASES[case]
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n")
    template = tmp_path / "t.json"
    template.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out"
    # a model that does not exist: the template must be refused before any model is loaded
    code, stdout, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out", out,
                                "--template", template, "--model", tmp_path / "no-model")
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "t.json" in lines[0] and "cannot load model" not in lines[0], lines[0]
    if field is not None:
        assert f"field '{field}'" in lines[0], lines[0]
    assert words.lower() in lines[0].lower(), lines[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- flags

TRAIN = ["train", "--train", "{data}", "--valid", "{data}", "--out", "{out}"]
"""The train command on the case's data file and output folder; each case adds its flag."""

FLAG_CASES = {
    "evaluate_batch_size_0": (["evaluate", "--data", "{data}", "--out", "{out}",
                               "--batch-size", "0"], "--batch-size"),
    "evaluate_batch_size_negative": (["evaluate", "--data", "{data}", "--out", "{out}",
                                      "--batch-size", "-3"], "--batch-size"),
    "train_batch_size_0": ([*TRAIN, "--batch-size", "0"], "--batch-size"),
    "train_epochs_0": ([*TRAIN, "--epochs", "0"], "--epochs"),
    "train_epochs_negative": ([*TRAIN, "--epochs", "-1"], "--epochs"),
    "train_epochs_nan": ([*TRAIN, "--epochs", "nan"], "--epochs"),
    "train_lr_0": ([*TRAIN, "--lr", "0"], "--lr"),
    "train_lr_negative": ([*TRAIN, "--lr", "-1e-4"], "--lr"),
    "train_max_steps_0": ([*TRAIN, "--max-steps", "0"], "--max-steps"),
    "train_eval_items_0": ([*TRAIN, "--eval-items", "0"], "--eval-items"),
    "train_grad_accum_0": ([*TRAIN, "--grad-accum", "0"], "--grad-accum"),
    "train_max_minutes_0": ([*TRAIN, "--max-minutes", "0"], "--max-minutes"),
    "train_lora_dropout_1": ([*TRAIN, "--lora-dropout", "1"], "--lora-dropout"),
    "train_warmup_2": ([*TRAIN, "--warmup-ratio", "2"], "--warmup-ratio"),
    "train_unknown_loss": ([*TRAIN, "--loss", "mse"], "--loss"),
    "train_no_target_modules": ([*TRAIN, "--target-modules", ","], "--target-modules"),
    "train_unknown_prior": ([*TRAIN, "--prior", "median"], "--prior"),
    "train_unknown_select_on": ([*TRAIN, "--select-on", "test"], "--select-on"),
    "train_select_heldout_without_heldout": ([*TRAIN, "--select-on",
                                              "heldout"], "--select-on"),
    "train_heldout_negative": ([*TRAIN, "--heldout-populations", "-1"],
                               "--heldout-populations"),
    "evaluate_unknown_dtype": (["evaluate", "--data", "{data}", "--out", "{out}", "--model",
                                "{nomodel}", "--dtype", "float8"], "--dtype"),
    "same_stem_data": (["evaluate", "--data", "{data}", "--data", "{data2}", "--out", "{out}"],
                       "--data"),
    "holdout_fraction_1": (["data", "holdout", "{data}", "--out", "{out}",
                            "--question-fraction", "1"], "--question-fraction"),
    "reproduce_unknown_budget": (["reproduce", "--out", "{out}", "--budget", "huge"],
                                 "--budget"),
    "baselines_ceiling_0": (["baselines", "--out", "{out}/b.json", "--ceiling-n", "0"],
                            "--ceiling-n"),
    "model_empty_folder": (["evaluate", "--data", "{data}", "--out", "{out}", "--model",
                            "{emptymodel}"], "--model"),
    "model_missing_folder": (["evaluate", "--data", "{data}", "--out", "{out}", "--model",
                              "{nomodel}"], "--model"),
    "model_file": (["evaluate", "--data", "{data}", "--out", "{out}", "--model", "{data}"],
                   "--model"),
    "model_unreachable_hub": (["evaluate", "--data", "{data}", "--out", "{out}", "--model",
                               "surveytune-nobody/no-such-model"], "--model"),
    "reproduce_model_missing": (["reproduce", "--out", "{out}", "--data-dir", "{datadir}",
                                 "--model", "{nomodel}"], "--model"),
}


@pytest.mark.parametrize("case", sorted(FLAG_CASES))
def test_bad_flag_named(monkeypatch, capsys, tmp_path, case):
    args, flag = FLAG_CASES[case]
    data = tmp_path / "a" / "test.jsonl"
    data2 = tmp_path / "b" / "test.jsonl"
    for path in (data, data2):
        path.parent.mkdir()
        path.write_text(GOOD_LINE + "\n" + rec(population="Spain") + "\n")
    (tmp_path / "emptymodel").mkdir()
    datadir = tmp_path / "datadir"  # the files reproduce needs, checked for existence
    for rel in ("wvs7_unified/wvs7_country_distributions.jsonl",
                "goqa_partial/goqa_union_question_country.jsonl",
                "wvs7_simllm_paper/sft_wvs_zh_valid.json"):
        (datadir / rel).parent.mkdir(parents=True)
        (datadir / rel).write_text(GOOD_LINE + "\n")
    out = tmp_path / "out"
    values = {"data": data, "data2": data2, "out": out, "nomodel": tmp_path / "no-model",
              "emptymodel": tmp_path / "emptymodel", "datadir": datadir}
    before = snapshot(tmp_path)
    code, stdout, err = run_cli(monkeypatch, capsys,
                                *[a.format(**{k: str(v) for k, v in values.items()})
                                  for a in args])
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {flag}:") or f" {flag}:" in lines[0] \
        or f"field '{flag}'" in lines[0], lines[0]
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- --out

def _train_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "training.json").write_text("{}")


def _reproduce_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{}")


def _marked(kind: str):
    def make(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "surveytune-run.json").write_text(json.dumps({"kind": kind}))
    return make


def _a_file(folder: Path) -> None:
    folder.write_text("not a folder")


def _under_a_file(folder: Path) -> None:
    folder.parent.parent.mkdir(parents=True)
    folder.parent.write_text("x")


OUT_CASES = {
    "evaluate_out_is_file": ("evaluate", _a_file, "out", "is a file"),
    "evaluate_out_under_file": ("evaluate", _under_a_file, "sub/file/out", "is a file"),
    "evaluate_out_read_only": ("evaluate", None, "/proc/surveytune-out", "cannot write"),
    "evaluate_out_train_run": ("evaluate", _train_run, "out", "'train' run"),
    "evaluate_out_reproduce_run": ("evaluate", _reproduce_run, "out", "'reproduce' run"),
    "evaluate_out_marked_splits": ("evaluate", _marked("splits"), "out", "'splits' run"),
    "train_out_is_file": ("train", _a_file, "out", "is a file"),
    "train_out_evaluate_run": ("train", _marked("evaluate"), "out", "'evaluate' run"),
    "train_out_reproduce_run": ("train", _reproduce_run, "out", "'reproduce' run"),
    "train_out_read_only": ("train", None, "/proc/surveytune-out/x", "cannot write"),
    "reproduce_out_train_run": ("reproduce", _train_run, "out", "'train' run"),
    "reproduce_out_is_file": ("reproduce", _a_file, "out", "is a file"),
    "splits_out_train_run": ("holdout", _train_run, "out", "'train' run"),
    "baselines_out_is_folder": ("baselines", None, "", "is a folder"),
}


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_bad_out_refused_before_model(monkeypatch, capsys, tmp_path, case):
    command, prepare, rel, words = OUT_CASES[case]
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n" + rec(population="Spain") + "\n")
    out = Path(rel) if rel.startswith("/") else tmp_path / rel
    if prepare is not None:
        prepare(out)
    nomodel = tmp_path / "no-model"  # never reached: the --out check comes first
    args = {"evaluate": ["evaluate", "--data", data, "--out", out, "--model", nomodel],
            "train": ["train", "--train", data, "--valid", data, "--out", out, "--model",
                      nomodel],
            "reproduce": ["reproduce", "--out", out, "--data-dir", tmp_path / "datadir",
                          "--model", nomodel],
            "holdout": ["data", "holdout", data, "--out", out, "--population", "Spain"],
            "baselines": ["baselines", "--out", out, "--data-dir", tmp_path / "datadir"],
            }[command]
    if command in ("reproduce", "baselines"):
        for rel_file in ("wvs7_unified/wvs7_country_distributions.jsonl",
                         "goqa_partial/goqa_union_question_country.jsonl",
                         "wvs7_simllm_paper/sft_wvs_zh_valid.json"):
            (tmp_path / "datadir" / rel_file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "datadir" / rel_file).write_text(GOOD_LINE + "\n")
    before = snapshot(tmp_path)
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "--out:" in lines[0] and words in lines[0], lines[0]
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_read_only_folder(monkeypatch, capsys, tmp_path):
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n")
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                               locked / "out", "--model", tmp_path / "no-model")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "--out:" in err and "cannot write" in err
    assert list(locked.iterdir()) == []


# ----------------------------------------------------------------------------- with a model

def test_second_process_on_a_train_folder_is_refused(monkeypatch, capsys, tmp_path,
                                                     tiny_model_dir):
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n" + rec(population="Spain") + "\n")
    out = tmp_path / "run"
    _marked("train")(out)
    lock = os.open(out / ".surveytune.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process's lock
    try:
        before = snapshot(tmp_path)
        code, _, err = run_cli(monkeypatch, capsys, "train", "--train", data, "--valid", data,
                               "--out", out, "--model", tiny_model_dir, "--max-steps", "1")
    finally:
        os.close(lock)
    assert code == 2 and len(err.splitlines()) == 1
    assert "--out:" in err and "in use by another surveytune process" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["evaluate", "train", "predict"])
def test_prompt_longer_than_context(monkeypatch, capsys, tmp_path, tiny_model_dir, command):
    # the tiny model has 1024 positions and one token per character
    long_question = "Why? " * 300
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n" + rec(population="Spain", question_id="q2",
                                           question=long_question) + "\n")
    out = tmp_path / "out"
    args = {"evaluate": ["evaluate", "--data", data, "--out", out],
            "train": ["train", "--train", data, "--valid", data, "--out", out],
            "predict": ["predict", "--question", long_question, "--option", "Yes", "--option",
                        "No", "--country", "France"]}[command]
    before = snapshot(tmp_path)
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--model", tiny_model_dir)
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "context of 1024" in lines[0] and "field 'question'" in lines[0]
    if command != "predict":
        assert "s.jsonl:2:" in lines[0]
    assert snapshot(tmp_path) == before


PREDICT_CASES = {
    "duplicate_option": (["--question", "Trust?", "--option", "Yes", "--option", "Yes",
                          "--country", "France"], "--option", "repeats"),
    "one_option": (["--question", "Trust?", "--option", "Yes", "--country", "France"],
                   "--option", "at least 2"),
    "empty_question": (["--question", " ", "--option", "Yes", "--option", "No", "--country",
                        "France"], "--question", "empty"),
    "empty_country": (["--question", "Trust?", "--option", "Yes", "--option", "No",
                       "--country", ""], "--population", "empty"),  # --country: its alias
}


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_bad_predict_arguments(monkeypatch, capsys, tmp_path, case):
    args, flag, words = PREDICT_CASES[case]
    code, stdout, err = run_cli(monkeypatch, capsys, "predict", *args, "--model",
                                tmp_path / "no-model")
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}:"), err
    assert words in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_run_folder_is_marked_and_left_clean_after_a_late_failure(monkeypatch, capsys,
                                                                   tmp_path, tiny_model_dir):
    data = tmp_path / "s.jsonl"
    data.write_text(GOOD_LINE + "\n")
    out = tmp_path / "eval"
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out", out,
                           "--model", tiny_model_dir)
    assert code == 0, err
    assert json.loads((out / "surveytune-run.json").read_text()) == {"kind": "evaluate"}
    # the same kind again is fine (re-runs overwrite); a train run there is refused
    code, _, err = run_cli(monkeypatch, capsys, "train", "--train", data, "--valid", data,
                           "--out", out, "--model", tiny_model_dir)
    assert code == 2 and "--out:" in err and "holds a 'evaluate' run" in err


def test_report_draws_dollar_signs(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import make_run

    from surveytune.report.build import build_report

    run = make_run(tmp_path)
    for path in run.glob("predictions/*/*.jsonl"):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for record in records:
            record["question"] += r" Costs $\frac{1}{$ or $x^{$ dollars?"
            record["population"] += " $a_"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    md, html = build_report(run)
    assert md.is_file() and html.is_file()
