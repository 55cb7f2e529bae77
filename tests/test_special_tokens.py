"""Plain prompts start with the tokenizer's own BOS; chat prompts get nothing added (issue 10.1).

The tokenizers here are built locally (character level, like tests/conftest.py) with a
post-processor that adds ``<s>`` before a text, as Llama-style tokenizers do.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import torch

import surveytune.training.recipe as training
from surveytune.backends.hf import HFBackend
from surveytune.backends.models import LoadedModel
from surveytune.backends.scoring import encode, score_token_ids, special_prefix
from surveytune.methods.prompts import build_prompt
from surveytune.simulator import Simulator
from surveytune.training.recipe import TrainConfig

CHAT_TEMPLATE = ("<s>{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def bos_tokenizer(template: str = "<s> $A"):
    """A character-level tokenizer whose ``add_special_tokens=True`` follows ``template``."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(string.printable)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[("<s>", 2), ("</s>", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>",
                                        unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama whose tokenizer adds BOS."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("bos-model")
    tokenizer = bos_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def test_plain_prompts_get_the_bos_and_chat_prompts_nothing():
    tokenizer = bos_tokenizer()
    bos = tokenizer.convert_tokens_to_ids("<s>")
    assert special_prefix(tokenizer) == [bos]
    plain = tokenizer("ab(", add_special_tokens=False)["input_ids"]
    assert encode(tokenizer, ["ab("], chat=False) == [[bos, *plain]]
    assert encode(tokenizer, ["ab("], chat=True) == [plain]
    # A chat template that writes its own <s> keeps exactly one.
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    (ids,) = encode(tokenizer, [chat], chat=True)
    assert ids[0] == bos and ids.count(bos) == 1
    # Plain text that already starts with the BOS is not given a second one.
    assert encode(tokenizer, ["<s>ab("], chat=False) == [[bos, *plain]]


def test_appended_eos_is_never_added():
    tokenizer = bos_tokenizer("<s> $A </s>")
    bos, eos = tokenizer.convert_tokens_to_ids(["<s>", "</s>"])
    assert tokenizer("ab(")["input_ids"][-1] == eos  # what add_special_tokens=True would do
    (ids,) = encode(tokenizer, ["ab("], chat=False)
    assert ids[0] == bos and eos not in ids


def test_tokenizer_without_specials_is_unchanged(tiny_model_dir):
    loaded = LoadedModel.load(str(tiny_model_dir))
    assert special_prefix(loaded.tokenizer) == []
    text = "How would someone from Aland answer (" * 2
    assert encode(loaded.tokenizer, [text], chat=False) == [
        loaded.tokenizer(text, add_special_tokens=False)["input_ids"]]


def test_simulator_scores_plain_prompts_with_the_bos(bos_model_dir, toy_items):
    loaded = LoadedModel.load(str(bos_model_dir))
    bos = loaded.tokenizer.bos_token_id
    sim = Simulator(HFBackend(loaded), chat=False)
    predicted = sim.predict(toy_items, progress=False)
    bare = [loaded.tokenizer(build_prompt(i), add_special_tokens=False)["input_ids"]
            for i in toy_items]
    k = [i.n_options for i in toy_items]
    pad = loaded.tokenizer.pad_token_id
    with_bos = score_token_ids(loaded.model, [[bos, *ids] for ids in bare], k,
                               loaded.letter_ids, pad, progress=False)
    without = score_token_ids(loaded.model, bare, k, loaded.letter_ids, pad, progress=False)
    for got, want in zip(predicted, with_bos):
        np.testing.assert_allclose(got.distribution, want.distribution, atol=1e-6)
    # The BOS changes the numbers, so the comparison above can tell the two apart.
    assert max(np.abs(a.distribution - b.distribution).max()
               for a, b in zip(with_bos, without)) > 1e-4


@pytest.mark.parametrize("chat", [False, True])
def test_training_encodes_through_the_same_function(bos_model_dir, toy_items, tmp_path,
                                                    monkeypatch, chat):
    loaded = LoadedModel.load(str(bos_model_dir))
    sim = Simulator(HFBackend(loaded), chat=chat)
    seen: list = []

    def recording(tokenizer, prompts, *, chat):
        ids = encode(tokenizer, prompts, chat=chat)
        seen.append((chat, ids))
        return ids

    monkeypatch.setattr(training, "encode", recording)
    sim.fit(toy_items, toy_items, tmp_path / "run",
            TrainConfig(max_steps=1, eval_every=0, lora_r=2, batch_size=4), progress=False)
    assert [flag for flag, _ in seen] == [chat, chat]  # train and valid items
    bos = loaded.tokenizer.bos_token_id
    for _, ids in seen:
        assert all(row[0] == bos and row.count(bos) == 1 for row in ids)
