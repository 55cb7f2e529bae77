"""Fine-tuning mechanics on a tiny random model: losses, learning, saving, resuming."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_and_full_training, synthetic_items
from safetensors.torch import load_file

from surveytune.backends.hf import HFBackend
from surveytune.backends.models import LoadedModel
from surveytune.data.files import write_jsonl
from surveytune.data.items import make_item
from surveytune.methods.params import ParameterError
from surveytune.simulator import Simulator
from surveytune.training.losses import LOSSES, ce_loss, emd_loss, js_loss, kl_loss, padded_targets
from surveytune.training.recipe import (
    Batchable,
    TrainConfig,
    batch_loss,
    epoch_order,
    step_items,
    wrap_for_training,
)

NEG_INF = float("-inf")

BAD_TRAIN_VALUES = {
    "method": ("adapter", "must be one of lora, full, got 'adapter'"),
    "lora_r": (0, "must be at least 1, got 0"),
    "lora_alpha": (0, "must be more than 0, got 0"),
    "lora_dropout": (1.0, "must be less than 1, got 1"),
    "loss": ("mse", "must be one of kl, js, emd, ce, got 'mse'"),
    "learning_rate": (0.0, "must be more than 0, got 0"),
    "weight_decay": (-0.1, "must be at least 0, got -0.1"),
    "batch_size": (0, "must be at least 1, got 0"),
    "grad_accum": (0, "must be at least 1, got 0"),
    "epochs": (math.nan, "must be a finite number, got nan"),
    "max_steps": (0, "must be at least 1, got 0"),
    "max_minutes": (0.0, "must be more than 0, got 0"),
    "warmup_ratio": (1.5, "must be at most 1, got 1.5"),
    "schedule": ("step", "must be one of cosine, linear, constant, got 'step'"),
    "max_grad_norm": (-1.0, "must be at least 0, got -1"),
    "eval_every": (-1, "must be at least 0, got -1"),
    "eval_items": (0, "must be at least 1, got 0"),
    "checkpoint_every": (0, "must be at least 1, got 0"),
    "seed": ("0", "must be a number, got '0'"),
    "precision": ("fp16", "must be one of auto, float32, bf16-autocast, got 'fp16'"),
    "prior": ("median", "must be one of none, region-mean, country-mean, population-style, "
                        "got 'median'"),
    "heldout_populations": (-1, "must be at least 0, got -1"),
    "select_on": ("test", "must be one of valid, heldout, mean, got 'test'"),
    "calibrate": ("yes", "must be one of False, True, got 'yes'"),
    "gradient_checkpointing": (None, "must be given, got None"),
    "questions_per_batch": (-1, "must be at least 0, got -1"),
}
"""A value outside each TrainConfig parameter's constraint, and the refusal."""


def test_every_train_parameter_has_a_constraint():
    from dataclasses import fields

    assert list(TrainConfig.CONSTRAINTS) == [f.name for f in fields(TrainConfig)
                                             if f.name != "target_modules"]
    assert set(BAD_TRAIN_VALUES) == set(TrainConfig.CONSTRAINTS)


@pytest.mark.parametrize("name", sorted(BAD_TRAIN_VALUES))
def test_train_config_refuses_a_value_outside_its_table(name):
    value, message = BAD_TRAIN_VALUES[name]
    with pytest.raises(ParameterError) as caught:
        TrainConfig(**{name: value})
    assert str(caught.value) == f"TrainConfig.{name}: {message}"
    assert caught.value.parameter == name


def test_train_config_bounds_ends_and_the_cross_field_rule():
    TrainConfig(lora_dropout=0.0, warmup_ratio=1.0, weight_decay=0.0, max_grad_norm=0.0,
                eval_every=0, max_steps=1, eval_items=1, max_minutes=0.5, epochs=0.01)
    with pytest.raises(ParameterError, match="^TrainConfig.select_on: 'mean' needs "
                                             "`heldout_populations` of at least 1, got 0$"):
        TrainConfig(select_on="mean")
    assert TrainConfig(select_on="heldout", heldout_populations=1).select_on == "heldout"
    with pytest.raises(ParameterError, match="^TrainConfig.batch_size: must be a whole number"):
        TrainConfig(batch_size=8.0)


def test_kl_loss_hand_computed_and_not_divided_by_options():
    human = torch.tensor([[0.5, 0.5, 0.0]])
    pred = torch.tensor([[0.25, 0.25, 0.5]])
    # KL = 0.5 ln(0.5/0.25) * 2 = ln 2; the zero share contributes nothing.
    assert float(kl_loss(human, pred.log())) == pytest.approx(math.log(2))


def test_losses_ignore_padded_options():
    human = padded_targets([(0.7, 0.3), (0.2, 0.3, 0.5)], 3)
    log_pred = torch.tensor([[math.log(0.6), math.log(0.4), NEG_INF],
                             [math.log(0.2), math.log(0.3), math.log(0.5)]])
    kl = float(kl_loss(human, log_pred))
    expected = (0.7 * math.log(0.7 / 0.6) + 0.3 * math.log(0.3 / 0.4) + 0.0) / 2
    assert kl == pytest.approx(expected)
    # emd row 1: |0.7-0.6| / (2-1) = 0.1; row 2 identical -> 0.
    assert float(emd_loss(human, log_pred)) == pytest.approx(0.05, rel=1e-5)  # float32 exp
    # of log(0.6): AVX512 kernels round it differently from AVX2 ones
    assert float(ce_loss(human, log_pred)) == pytest.approx(
        (-math.log(0.6) - math.log(0.5)) / 2)
    js = float(js_loss(human, log_pred))
    p, q = np.array([0.7, 0.3]), np.array([0.6, 0.4])
    m = (p + q) / 2
    expected_js = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    assert js == pytest.approx(expected_js / 2, rel=1e-5)  # float32
    for loss in LOSSES.values():
        assert math.isfinite(float(loss(human, log_pred)))


def test_epoch_order_is_deterministic_and_a_permutation():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]
    a = epoch_order(lengths, 3, seed=1, epoch=0)
    assert sorted(a) == list(range(10))
    assert a == epoch_order(lengths, 3, seed=1, epoch=0)
    assert a != epoch_order(lengths, 3, seed=1, epoch=1)
    steps = [i for s in range(4) for i in step_items(s, lengths, 3, 3, seed=1)]
    assert steps[:10] != steps[10:] + [None] * 8  # wraps into epoch 1
    assert sorted(steps[:9]) == sorted(a[:9])


@pytest.mark.parametrize("method", ["lora", "full"])
def test_loss_falls_on_a_fixed_batch(tiny_model_dir, method):
    loaded = LoadedModel.load(str(tiny_model_dir))
    # One skewed target shared by the batch: a random model can fit it within 20 steps.
    items = [make_item(survey="toy", question_id=f"q{q}", question=f"Question {q}?",
                       options=["yes", "no", "maybe"], distribution=[0.8, 0.15, 0.05],
                       population=p) for q in range(4) for p in ("Aland", "Borduria")]
    sim = Simulator(HFBackend(loaded), chat=False)
    tokenized = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"]
                 for p in sim.prompts(items)]
    batch = Batchable(tokenized, [i.distribution for i in items])
    config = TrainConfig(method=method, lora_r=16, target_modules=("all-linear",),
                         lora_dropout=0.0)
    model = wrap_for_training(loaded.model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=1e-2 if method == "lora" else 3e-3)
    letters = torch.tensor(loaded.letter_ids)
    idx = list(range(len(items)))
    losses = []
    for _ in range(20):
        loss = batch_loss(model, batch, idx, letters, loaded.tokenizer.pad_token_id, "kl")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert max(losses[-5:]) < min(losses[:3])


def test_shared_prefix_training_gives_the_same_loss_and_gradients(tiny_model_dir):
    from surveytune.backends.scoring import plan_prefixes

    loaded = LoadedModel.load(str(tiny_model_dir))
    items = synthetic_items(n_questions=3, populations=("Aland", "Borduria", "Carpania"))
    sim = Simulator(HFBackend(loaded), chat=False)
    tokenized = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"]
                 for p in sim.prompts(items)]
    assert len({len(t) for t in tokenized}) > 1  # padding between prefix and rest is tested
    assert all(plan_prefixes(tokenized))
    (loss_shared, grads_shared), (loss_plain, grads_plain) = shared_and_full_training(
        loaded, tokenized, [i.distribution for i in items], list(range(len(items))))
    assert loss_shared == pytest.approx(loss_plain, abs=1e-5)
    for a, b in zip(grads_shared, grads_plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in grads_shared)


def _fit(model_dir, out, **overrides):
    items = synthetic_items(n_questions=6, populations=("Aland", "Borduria", "Carpania"))
    train = [i for i in items if i.question_id not in ("q4", "q5")]
    valid = [i for i in items if i.question_id in ("q4", "q5")]
    sim = Simulator.load(str(model_dir), chat=False)
    config = TrainConfig(**{"max_steps": 6, "epochs": 10, "batch_size": 4, "eval_every": 3,
                            "learning_rate": 5e-3, "checkpoint_every": 2,
                            "target_modules": ("all-linear",), **overrides})
    result = sim.fit(train, valid, out, config, progress=False)
    return sim, result, valid


def test_fit_keeps_best_validation_checkpoint_and_reloads_identically(tiny_model_dir, tmp_path):
    sim, result, valid = _fit(tiny_model_dir, tmp_path / "run")
    history = result.history
    assert [h["step"] for h in history] == [0, 3, 6]
    best = min(history, key=lambda h: h["valid_loss"])
    assert result.best_step == best["step"]
    meta = json.loads((tmp_path / "run" / "adapter" / "surveytune.json").read_text())
    assert meta["step"] == result.best_step and meta["fingerprint"]["train"]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    before = sim.predict(valid, progress=False)
    reloaded = Simulator.load(str(tiny_model_dir), adapter=tmp_path / "run" / "adapter")
    assert reloaded.chat is False and reloaded.method == "fine-tuned"
    after = reloaded.predict(valid, progress=False)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)
    # The chosen weights are the ones validated: the reloaded loss equals the best loss.
    human = padded_targets([i.distribution for i in valid], 5)
    log_pred = torch.full((len(valid), 5), NEG_INF)
    for row, p in enumerate(after):
        log_pred[row, : len(p.distribution)] = torch.tensor(np.log(p.distribution))
    assert float(kl_loss(human, log_pred)) == pytest.approx(result.best_valid_loss, abs=1e-5)


def test_fit_keeps_the_prior_and_calibration_training_made(tiny_model_dir, tmp_path):
    sim, result, valid = _fit(tiny_model_dir, tmp_path / "run", max_steps=2, eval_every=1,
                              prior="country-mean", calibrate=True)
    assert result.prior is not None and result.prior.name == "country-mean"
    assert result.calibration is not None
    assert sim.prior is result.prior and sim.calibration is result.calibration
    reloaded = Simulator.load(str(tiny_model_dir), adapter=tmp_path / "run" / "adapter")
    assert reloaded.calibration.to_dict() == result.calibration.to_dict()
    for a, b in zip(sim.predict(valid, progress=False), reloaded.predict(valid, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)


def test_full_fine_tuning_saves_a_loadable_model(tiny_model_dir, tmp_path):
    sim, result, valid = _fit(tiny_model_dir, tmp_path / "full", method="full",
                              learning_rate=1e-3)
    assert (tmp_path / "full" / "adapter" / "model.safetensors").exists()
    reloaded = Simulator.load(str(tiny_model_dir), adapter=tmp_path / "full" / "adapter")
    for a, b in zip(sim.predict(valid, progress=False), reloaded.predict(valid, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-6)


def test_rerun_with_other_config_refuses_to_resume(tiny_model_dir, tmp_path):
    _fit(tiny_model_dir, tmp_path / "run", max_steps=2)
    with pytest.raises(ValueError, match="another configuration"):
        _fit(tiny_model_dir, tmp_path / "run", max_steps=2, learning_rate=1e-4)


SLOW_TRAIN = """
import sys, time
import surveytune.training.recipe as training
original = training.batch_loss
def slow(*args, **kwargs):
    time.sleep(0.05)
    return original(*args, **kwargs)
training.batch_loss = slow
from surveytune.cli.main import main
sys.argv = ["surveytune"] + sys.argv[1:]
main()
"""


def _train_command(model_dir: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", SLOW_TRAIN, "train", "--model", str(model_dir),
            "--train", str(data / "train.jsonl"), "--valid", str(data / "valid.jsonl"),
            "--out", str(out), "--no-chat", "--max-steps", "40", "--epochs", "20",
            "--batch-size", "4",
            "--eval-every", "20", "--checkpoint-every", "5", "--lr", "5e-3",
            "--target-modules", "all-linear", "--allow-unknown-populations", "--json"]


def test_killed_run_resumes_from_last_checkpoint(tiny_model_dir, tmp_path):
    items = synthetic_items(n_questions=6, populations=("Aland", "Borduria", "Carpania"))
    write_jsonl([i for i in items if i.question_id not in ("q4", "q5")],
                tmp_path / "data" / "train.jsonl")
    write_jsonl([i for i in items if i.question_id in ("q4", "q5")],
                tmp_path / "data" / "valid.jsonl")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    # An uninterrupted run, for reference.
    subprocess.run(_train_command(tiny_model_dir, tmp_path / "data", tmp_path / "whole"),
                   check=True, env=env, capture_output=True)
    # The same run, killed with SIGKILL once it has checkpointed at least once.
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(tiny_model_dir, tmp_path / "data", out), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["step"] >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 10 <= killed_at < 40, "the run should have been killed mid-way"
    resumed = subprocess.run(_train_command(tiny_model_dir, tmp_path / "data", out),
                             check=True, env=env, capture_output=True, text=True)
    assert f"resuming from step {killed_at}" in resumed.stderr + resumed.stdout
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["steps_done"] == 40
    # Deterministic data order and dropout seeds: resuming gives the uninterrupted result.
    whole = load_file(str(tmp_path / "whole" / "checkpoint" / "trainable.safetensors"))
    again = load_file(str(out / "checkpoint" / "trainable.safetensors"))
    for name in whole:
        torch.testing.assert_close(whole[name], again[name], atol=1e-6, rtol=1e-5)


# --- adapter refusals ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A real (short) LoRA fit on the tiny model; tests copy its adapter before breaking it."""
    out = tmp_path_factory.mktemp("adapter-run")
    _fit(tiny_model_dir, out, max_steps=2, eval_every=2)
    return out / "adapter"


def _copy_adapter(adapter: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(adapter, tmp_path / "adapter"))


def test_adapter_records_its_base_model_and_reloads(tiny_model_dir, trained_adapter):
    from surveytune.backends.adapters import AdapterMeta

    assert AdapterMeta.read(trained_adapter).base_model == str(tiny_model_dir)
    sim = Simulator.load(str(tiny_model_dir), adapter=trained_adapter)
    assert sim.method == "fine-tuned" and sim.chat is False


def test_adapter_of_another_base_model_is_refused(tiny_model_dir, trained_adapter, tmp_path):
    from conftest import build_tiny_model

    from surveytune.backends.models import ModelError

    other = build_tiny_model(tmp_path / "other-model", seed=1)
    with pytest.raises(ModelError, match="was trained on .*not on") as error:
        Simulator.load(str(other), adapter=trained_adapter)
    assert "\n" not in str(error.value) and str(other) in str(error.value)


def test_adapter_whose_shapes_do_not_fit_is_refused(tiny_model_dir, trained_adapter, tmp_path):
    from safetensors.torch import save_file

    from surveytune.backends.models import ModelError

    adapter = _copy_adapter(trained_adapter, tmp_path)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    name = next(k for k in sorted(weights) if "lora_A" in k)
    weights[name] = weights[name][:, :-1].contiguous()  # one input feature short
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(ModelError, match="does not fit the model: .*has shape") as error:
        Simulator.load(str(tiny_model_dir), adapter=adapter)
    assert "\n" not in str(error.value)


def test_bin_only_adapter_is_refused(tiny_model_dir, trained_adapter, tmp_path):
    from surveytune.backends.models import ModelError

    adapter = _copy_adapter(trained_adapter, tmp_path)
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(ModelError, match="safetensors"):
        Simulator.load(str(tiny_model_dir), adapter=adapter)


def test_broken_adapter_record_is_named(tiny_model_dir, trained_adapter, tmp_path,
                                        monkeypatch, capsys):
    from surveytune.backends.models import ModelError
    from surveytune.cli.main import main

    adapter = _copy_adapter(trained_adapter, tmp_path)
    (adapter / "surveytune.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"surveytune\.json: cannot read the adapter's record"):
        Simulator.load(str(tiny_model_dir), adapter=adapter)
    # The command line turns it into one line and exit code 2.
    monkeypatch.setattr(sys, "argv", ["surveytune", "predict", "--model", str(tiny_model_dir),
                                      "--adapter", str(adapter), "--question", "Q?",
                                      "--option", "a", "--option", "b", "--country", "France"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err.count("\n") == 0 and str(adapter / "surveytune.json") in err
