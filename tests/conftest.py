"""Shared fixtures: a tiny random causal LM with a character-level tokenizer (no download),
synthetic survey items, and the location of the real shared data (tests skip without it)."""

from __future__ import annotations

import os
import string
import warnings
from pathlib import Path

import pytest

from surveytune.data.items import make_item

REPO = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the command line as a user would: (exit code, stdout, stderr)."""
    import sys

    from surveytune.cli.main import main

    monkeypatch.setattr(sys, "argv", ["surveytune", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def data_dir() -> Path | None:
    """The shared data folder, if this machine has it."""
    candidates = [os.environ.get("SURVEYTUNE_DATA_DIR"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "wvs7_unified").is_dir():
            return Path(candidate)
    return None


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer Llama with a character-level tokenizer to ``path``."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>"]
    chars = sorted(set(string.printable) | set("×’“”—–é"))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>",
                                        unk_token="<unk>", eos_token="<eos>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, pad_token_id=0, eos_token_id=2,
                         bos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def synthetic_items(n_questions: int = 4, populations: tuple[str, ...] = ("Aland", "Borduria",
                    "Carpania"), seed: int = 0, split: str | None = None) -> list:
    """Items with skewed, population-dependent distributions over 2-5 options."""
    import numpy as np

    rng = np.random.default_rng(seed)
    items = []
    for q in range(n_questions):
        k = 2 + q % 4
        for population in populations:
            dist = rng.dirichlet(np.full(k, 0.7))
            items.append(make_item(
                survey="toy", question_id=f"q{q}", question=f"Toy question number {q}?",
                options=[f"option {j}" for j in range(k)], distribution=dist.tolist(),
                population=population, ordinal=True, split=split))
    return items


@pytest.fixture
def toy_items() -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic_items()


def shared_and_full_training(loaded, token_ids, distributions, idx):
    """``(loss, LoRA gradients)`` of batch ``idx``, once with the shared starts run once and
    once with every row in full: LoRA r=4 on all linear layers, dropout 0, its B matrices
    drawn non-zero so that they count."""
    import torch

    from surveytune.training.recipe import Batchable, TrainConfig, batch_loss, wrap_for_training

    batch = Batchable(token_ids, distributions)
    model = wrap_for_training(loaded.model, TrainConfig(lora_r=4, lora_dropout=0.0,
                                                        target_modules=("all-linear",)))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    letters = torch.tensor(loaded.letter_ids)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(shared: bool):
        model.zero_grad()
        loss = batch_loss(model, batch, idx, letters, loaded.tokenizer.pad_token_id, "kl",
                          share_prefix=shared)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in trainable]

    return loss_and_grads(True), loss_and_grads(False)
