"""Adding a backend is one module and one registry line: the toy backend (toy_backend.py)
used end to end through ``Simulator.load`` and the command line, with priors, order
averaging and training refused; ``--backend-args`` parsing and its one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import run_cli
from toy_backend import ToyBackend, ToyOptions, toy_distribution

from surveytune.backends.base import BACKENDS, Backend, BackendOptions
from surveytune.backends.errors import ModelError
from surveytune.backends.hf import HFOptions
from surveytune.backends.openai import OpenAIOptions
from surveytune.data.items import DataError
from surveytune.methods.params import ParameterError
from surveytune.simulator import Simulator

QUESTION = ["--question", "Trust?", "--option", "Yes", "--option", "No", "--option", "Maybe",
            "--country", "France", "--country", "Japan"]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(BACKENDS, "toy", "toy_backend")  # the one line that registers it



def test_simulator_load_uses_a_registered_backend(toy, toy_items):
    sim = Simulator.load("any-model", backend="toy", scale=2.0, batch_size=3)
    assert isinstance(sim.backend, ToyBackend) and isinstance(sim.backend, Backend)
    assert sim.backend.options == ToyOptions(scale=2.0, batch_size=3)  # the simulator's too
    predictions = sim.predict(toy_items, progress=False)
    assert sim.backend.prompts_seen == len(toy_items)
    for item, prediction in zip(toy_items, predictions):
        np.testing.assert_allclose(prediction.distribution, toy_distribution(item.n_options, 2))
        assert prediction.letter_mass == 0.5
    with pytest.raises(ParameterError, match=r"^ToyOptions\.device: unknown option; known: "
                                             r"scale, mass$"):
        Simulator.load("any-model", backend="toy", device="cpu")


def test_a_registered_backend_gets_priors_and_order_averaging(toy, toy_items):
    sim = Simulator.load("any-model", backend="toy", scale=0.5)
    plain = sim.predict(toy_items, progress=False)
    logp = [np.log(np.linspace(1, 2, i.n_options) / np.linspace(1, 2, i.n_options).sum())
            for i in toy_items]

    class Fixed:
        name = "fixed"

        def log_priors(self, items):
            return [logp[toy_items.index(i)] for i in items]

    sim.prior = Fixed()
    anchored = sim.predict(toy_items, progress=False)
    for p, a, lp in zip(plain, anchored, logp):
        expected = p.distribution * np.exp(lp)
        np.testing.assert_allclose(a.distribution, expected / expected.sum(), rtol=1e-9)
    sim.order_average = True
    averaged = sim.predict(toy_items, progress=False)
    backward = sim.predict_reversed(toy_items, progress=False)
    for a, b, p in zip(averaged, backward, plain):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-12)
        assert not np.allclose(a.distribution, p.distribution)  # the toy is order-dependent


def test_training_is_refused_on_a_backend_that_only_scores(toy, toy_items, tmp_path):
    sim = Simulator.load("any-model", backend="toy")
    with pytest.raises(ModelError, match="^the 'toy' backend only scores: training"):
        sim.fit(toy_items, toy_items, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ModelError, match="only scores"):
        sim.model  # noqa: B018 - the transformers model of a backend that has none


def test_cli_predict_and_evaluate_with_the_toy_backend(toy, monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "predict", *QUESTION, "--backend", "toy",
                             "--backend-args", "scale=2", "--json")
    assert code == 0, err
    rows = json.loads(out)  # the long-form table: one row per population and option
    assert [(row["population"], row["option"]) for row in rows] == [
        (p, o) for p in ("France", "Japan") for o in ("Yes", "No", "Maybe")]
    for population in ("France", "Japan"):
        np.testing.assert_allclose([r["share"] for r in rows if r["population"] == population],
                                   [1 / 14, 4 / 14, 9 / 14])
    assert {(r["method"], r["model"], r["letter_mass"]) for r in rows} == {
        ("zero-shot", "smollm2-135m-instruct", 0.5)}
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"question_id": "q1", "question": "Trust?", "population": "France",
                                "options": ["Yes", "No"], "distribution": [0.2, 0.8]}) + "\n")
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                             tmp_path / "eval", "--backend", "toy", "--backend-args",
                             "scale=2, mass=0.25", "--json")
    assert code == 0, err
    assert json.loads(out)["backend"] == "toy"
    record = json.loads((tmp_path / "eval" / "predictions.jsonl").read_text())
    assert record["predicted"] == [0.2, 0.8] and record["letter_mass"] == 0.25


def test_backend_args_are_typed_by_the_options_fields():
    assert HFOptions.parse("device=cpu, load_in_8bit=true,dtype=float32,") == {
        "device": "cpu", "load_in_8bit": True, "dtype": "float32"}
    assert OpenAIOptions.parse("top_logprobs=5,timeout=2.5,tokenizer=a=b") == {
        "top_logprobs": 5, "timeout": 2.5, "tokenizer": "a=b"}
    assert HFOptions.parse("load_in_4bit=No") == {"load_in_4bit": False}
    assert ToyOptions.parse("") == {}


@pytest.mark.parametrize(("text", "words"), [
    ("scale", "'scale' is not key=value"),
    ("=2", "'=2' is not key=value"),
    ("temperature=1", "unknown key 'temperature'; this backend knows scale, mass"),
    ("batch_size=4", "unknown key 'batch_size'; this backend knows scale, mass"),
    ("scale=high", "scale must be a number, got 'high'"),
    ("scale=1,scale=2", "scale is given twice"),
])
def test_bad_backend_args_are_one_line(text, words):
    with pytest.raises(DataError) as caught:
        ToyOptions.parse(text)
    assert str(caught.value) == f"--backend-args: {words}"


def test_backend_args_of_other_types_are_typed_too():
    with pytest.raises(DataError, match="^--backend-args: load_in_4bit must be true or false"):
        HFOptions.parse("load_in_4bit=maybe")
    with pytest.raises(DataError, match="^--backend-args: retries must be a whole number"):
        OpenAIOptions.parse("retries=2.5")

    @dataclass(frozen=True)
    class Listed(BackendOptions):
        names_: tuple = ()

    with pytest.raises(TypeError, match="cannot type names_"):
        Listed.parse("names_=a")


@pytest.mark.parametrize(("args", "line"), [
    (["--backend", "toy", "--backend-args", "scale=0"],
     "error: --backend-args: scale must be more than 0, got 0"),
    (["--backend", "toy", "--backend-args", "nope=1"],
     "error: --backend-args: unknown key 'nope'; this backend knows scale, mass"),
    (["--backend", "toy", "--device", "cpu"],
     "error: --device: applies to another backend than 'toy'"),
    (["--backend", "hf", "--backend-args", "device=cpu", "--device", "cpu"],
     "error: --backend-args: device is also given as --device"),
    (["--backend", "hf", "--top-logprobs", "5"],
     "error: --top-logprobs: applies to another backend than 'hf'"),
    (["--backend", "openai", "--top-logprobs", "0"],
     "error: --top-logprobs: must be at least 1, got 0"),
    (["--backend", "openai", "--backend-args", "concurrency=0"],
     "error: --backend-args: concurrency must be at least 1, got 0"),
    (["--backend", "openai", "--missing-letters", "zero"],
     "error: --missing-letters: must be one of floor, error, got 'zero'"),
])
def test_backend_flag_errors_are_one_line_before_anything_runs(toy, monkeypatch, capsys,
                                                               tmp_path, args, line):
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", tmp_path / "none.jsonl",
                             "--out", tmp_path / "out", *args)
    assert (code, out, err) == (2, "", line + "\n")  # refused before the data is even read
    code, out, err = run_cli(monkeypatch, capsys, "predict", *QUESTION, *args)
    assert (code, out, err) == (2, "", line + "\n")
