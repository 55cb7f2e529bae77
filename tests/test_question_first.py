"""The question-first prompt style: its templates, the per-question shared starts, and that
the shared path gives the same distributions and gradients as running every prompt in full."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_and_full_training, synthetic_items

from surveytune.backends.hf import HFBackend
from surveytune.backends.models import LoadedModel
from surveytune.backends.scoring import encode, plan_prefixes, score_token_ids, shared_batches
from surveytune.data.items import DataError, make_item
from surveytune.methods.prompts import PROMPT_STYLES, PromptTemplate, build_prompt
from surveytune.simulator import Simulator
from surveytune.training.recipe import TrainConfig

POPULATIONS = ("Aland", "Borduria", "Carpania", "Dalmatia", "Elbonia")


def _items():
    return synthetic_items(n_questions=4, populations=POPULATIONS)


def test_question_first_names_the_population_last_in_every_language():
    item = make_item(survey="s", question_id="q", question="Is it good?", options=["Yes", "No"],
                     distribution=[0.5, 0.5], population="Egypt")
    prompt = build_prompt(item, style="question-first")
    assert prompt.startswith("How would people answer the following question?\n\nIs it good?")
    assert prompt.endswith("(B)No Most likely answer of someone from Egypt: (")
    zh = build_prompt(item.replace(language="zh"), style="question-first")
    assert zh.endswith("最可能的回答，回答者来自Egypt：(")
    group = item.replace(population="POLPARTY: Democrat", population_kind="subgroup")
    assert build_prompt(group, style="question-first").endswith(
        "Most likely answer of a Democrat in the United States: (")
    assert all(t.population_last for t in PROMPT_STYLES["question-first"].values())
    assert not any(t.population_last for t in PROMPT_STYLES["paper"].values())


def test_a_template_names_the_population_once(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"user": "{population}? {question} {options}", '
                    '"answer_prefix": " as {population}: ("}')
    with pytest.raises(DataError, match=r"t\.json: field 'user': \{population\} is in both"):
        PromptTemplate.from_file(path)
    path.write_text('{"user": "{question} {options}", "answer_prefix": " as {place}: ("}')
    with pytest.raises(DataError, match=r"field 'answer_prefix': unknown placeholder \{place\}"):
        PromptTemplate.from_file(path)
    path.write_text('{"user": "{question} {options}", "answer_prefix": " as {population}: ("}')
    assert PromptTemplate.from_file(path).population_last


def test_each_question_shares_its_question_part():
    loaded_prompts = [build_prompt(i, style="question-first") for i in _items()]
    ids = [[ord(c) for c in p] for p in loaded_prompts]
    sizes = plan_prefixes(ids)
    by_question: dict[str, set[int]] = {}
    for item, size in zip(_items(), sizes):
        by_question.setdefault(item.question_id, set()).add(size)
    assert all(len(s) == 1 for s in by_question.values())  # one start per question
    for item, prompt, size in zip(_items(), loaded_prompts, sizes):
        shared = prompt[:size]
        assert item.question in shared and "Most likely answer of someone from " in shared
        assert item.population not in shared
    # The paper's template shares only its common start ("How would someone from ").
    paper = [[ord(c) for c in build_prompt(i)] for i in _items()]
    assert set(plan_prefixes(paper)) == {len("How would someone from ")}


def test_batches_keep_a_question_together_and_cover_everything_once():
    ids = [[ord(c) for c in build_prompt(i, style="question-first")] for i in _items()]
    batches = shared_batches(ids, plan_prefixes(ids), batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    questions = [{_items()[i].question_id for i in b} for b in batches]
    assert all(len(q) <= 2 for q in questions)


@pytest.mark.parametrize(("chat", "attention"), [(False, "sdpa"), (True, "sdpa"),
                                                 (False, "eager")])
def test_shared_scoring_equals_every_prompt_in_full(tiny_model_dir, chat, attention):
    loaded = LoadedModel.load(str(tiny_model_dir))
    loaded.model.set_attn_implementation(attention)
    assert loaded.model.config._attn_implementation == attention
    sim = Simulator(HFBackend(loaded), chat=chat, prompt="question-first")
    items = _items()
    ids = encode(loaded.tokenizer, sim.prompts(items), chat=chat)
    args = (loaded.model, ids, [i.n_options for i in items], loaded.letter_ids,
            loaded.tokenizer.pad_token_id)
    shared = score_token_ids(*args, batch_size=3, progress=False, share_prefix=True)
    plain = score_token_ids(*args, batch_size=3, progress=False, share_prefix=False)
    for a, b in zip(shared, plain):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)
        assert a.letter_mass == pytest.approx(b.letter_mass, abs=1e-6)


def test_shared_training_gives_the_same_loss_and_gradients(tiny_model_dir):
    loaded = LoadedModel.load(str(tiny_model_dir))
    items = _items()
    sim = Simulator(HFBackend(loaded), chat=False, prompt="question-first")
    tokenized = encode(loaded.tokenizer, sim.prompts(items), chat=False)
    # Two questions and a lone row of a third: two shared starts and the common one.
    idx = [0, 1, 2, 5, 6, 7, 12]
    assert len({s for s in plan_prefixes([tokenized[i] for i in idx])}) == 3
    (loss_shared, grads_shared), (loss_plain, grads_plain) = shared_and_full_training(
        loaded, tokenized, [i.distribution for i in items], idx)
    assert loss_shared == pytest.approx(loss_plain, abs=1e-5)
    for a, b in zip(grads_shared, grads_plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_the_prompt_style_is_saved_with_the_adapter(tiny_model_dir, tmp_path):
    items = _items()
    sim = Simulator.load(str(tiny_model_dir), chat=False, prompt="question-first")
    config = TrainConfig(max_steps=2, batch_size=4, eval_every=0, learning_rate=1e-3)
    sim.fit([i for i in items if i.question_id != "q3"],
            [i for i in items if i.question_id == "q3"], tmp_path / "run", config,
            progress=False)
    again = Simulator.load(str(tiny_model_dir), adapter=tmp_path / "run" / "adapter")
    assert again.prompt == "question-first"
    assert again.prompts(items[:1])[0].endswith("answer of someone from Aland: (")


def test_predict_and_evaluate_take_the_prompt_style(monkeypatch, capsys, tmp_path,
                                                    tiny_model_dir):
    from conftest import run_cli
    from test_cli import GOOD, write_jsonl

    args = ("predict", "--model", tiny_model_dir, "--question", "Trust?", "--option", "Yes",
            "--option", "No", "--country", "France", "--country", "Japan", "--json")
    code, out, _ = run_cli(monkeypatch, capsys, *args, "--prompt", "question-first")
    shared = {r["population"]: r["share"] for r in json.loads(out) if r["option"] == "Yes"}
    code_paper, out_paper, _ = run_cli(monkeypatch, capsys, *args)
    paper = {r["population"]: r["share"] for r in json.loads(out_paper) if r["option"] == "Yes"}
    assert code == code_paper == 0 and shared != paper  # another prompt, other numbers
    path = tmp_path / "mine.jsonl"
    write_jsonl(path, [GOOD, {**GOOD, "population": "Spain"}])
    code, out, _ = run_cli(monkeypatch, capsys, "evaluate", "--data", path, "--out",
                           tmp_path / "e", "--model", tiny_model_dir, "--prompt",
                           "question-first", "--json")
    assert code == 0 and json.loads(out)["prompt"] == "question-first"
    code, _, err = run_cli(monkeypatch, capsys, *args, "--prompt", "population-last")
    assert code == 2 and err.count("\n") == 1
    assert "--prompt: unknown prompt style 'population-last'" in err


@pytest.mark.parametrize("questions_per_batch", [1, 2])
def test_batches_grouped_by_question_cover_the_epoch_once(questions_per_batch):
    from surveytune.training.batches import epoch_order

    groups = [f"q{i % 7}" for i in range(7 * 11)]  # 7 questions of 11 populations
    order = epoch_order([10] * len(groups), 8, seed=3, epoch=0, groups=groups,
                        questions_per_batch=questions_per_batch)
    assert sorted(order) == list(range(len(groups)))
    assert order == epoch_order([10] * len(groups), 8, seed=3, epoch=0, groups=groups,
                                questions_per_batch=questions_per_batch)
    batches = [order[i:i + 8] for i in range(0, len(order) - 7, 8)]
    per_batch = [len({groups[i] for i in b}) for b in batches]
    # Most batches hold the populations of questions_per_batch questions; the pooled
    # remainders of questions make a few mixed ones.
    assert np.mean([n == questions_per_batch for n in per_batch]) >= 0.6


def test_budgets_prompt_question_first_and_the_paper_recipe_keeps_the_papers():
    from surveytune.studies.budgets import with_recipe
    from surveytune.studies.gss import BUDGETS as GSS_BUDGETS
    from surveytune.studies.wvs import BUDGETS

    for budget in BUDGETS.values():
        assert budget.prompt == "question-first" and budget.train.questions_per_batch == 1
        assert budget.train.precision == "auto"
        paper = with_recipe(budget, "paper")
        assert paper.prompt == "paper" and paper.train.questions_per_batch == 0
        assert paper.name == f"{budget.name}-paper"
    assert all(b.prompt == "paper" for b in GSS_BUDGETS.values())
