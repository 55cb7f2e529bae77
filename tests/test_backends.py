"""The hf backend behind the scoring interface (the registry and a backend added to it:
test_backend_registry.py), its options, devices and dtypes, and gradient checkpointing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surveytune.backends.base import Backend, load_backend
from surveytune.backends.devices import resolve_device, resolve_dtype
from surveytune.backends.errors import ModelError
from surveytune.backends.hf import HFBackend, HFOptions
from surveytune.methods.params import ParameterError
from surveytune.simulator import Simulator
from surveytune.training.recipe import Batchable, TrainConfig, batch_loss, wrap_for_training


def test_hf_backend_is_the_default_and_satisfies_the_protocol(tiny_model_dir, toy_items):
    sim = Simulator.load(str(tiny_model_dir), chat=False, device="cpu")
    assert isinstance(sim.backend, HFBackend) and isinstance(sim.backend, Backend)
    assert sim.backend.name == "hf" and sim.model.device.type == "cpu"
    assert sim.backend.trainable().letter_ids == sim.letter_ids
    direct = sim.backend.score(sim.prompts(toy_items), [i.n_options for i in toy_items],
                               chat=False, progress=False)
    via_sim = sim.predict(toy_items, progress=False)
    for a, b in zip(direct, via_sim):
        np.testing.assert_allclose(a.distribution, b.distribution)
        assert a.letter_mass == b.letter_mass and 0 < a.letter_mass < 1


def test_hf_options_reach_the_backend(tiny_model_dir):
    backend = load_backend("hf", str(tiny_model_dir), HFOptions(dtype="bfloat16",
                                                                batch_size=3))
    assert backend.batch_size == 3 and next(backend.model.parameters()).dtype == torch.bfloat16
    sim = Simulator.load(str(tiny_model_dir), batch_size=5, dtype="float32")
    assert sim.backend.batch_size == 5
    assert next(sim.model.parameters()).dtype == torch.float32


def test_hf_options_are_checked_by_their_table(tiny_model_dir):
    with pytest.raises(ParameterError, match=r"^HFOptions\.device: must be one of auto, cpu, "
                                             r"cuda, mps, got 'tpu'$"):
        HFOptions(device="tpu")
    with pytest.raises(ParameterError, match=r"^HFOptions\.batch_size: must be at least 1"):
        Simulator.load(str(tiny_model_dir), batch_size=0)
    with pytest.raises(ParameterError, match=r"^HFOptions\.base_url: unknown option; known: "
                                             r"device, dtype, load_in_8bit, load_in_4bit$"):
        Simulator.load(str(tiny_model_dir), base_url="http://127.0.0.1:1/v1")


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ModelError, match="unknown backend 'nope'"):
        Simulator.load(str(tiny_model_dir), backend="nope")


def test_devices_and_dtypes():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else resolve_device())
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(ModelError, match="--device: unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
@pytest.mark.parametrize("flag", ["load_in_8bit", "load_in_4bit"])
def test_quantized_base_refused_without_cuda(tiny_model_dir, flag):
    with pytest.raises(ModelError, match="needs a CUDA GPU"):
        Simulator.load(str(tiny_model_dir), device="cpu", **{flag: True})


def _loss_and_grads(tiny_model_dir, items, checkpointing: bool):
    from surveytune.backends.models import LoadedModel

    loaded = LoadedModel.load(str(tiny_model_dir))
    sim = Simulator(HFBackend(loaded), chat=False)
    tokenized = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"]
                 for p in sim.prompts(items)]
    batch = Batchable(tokenized, [i.distribution for i in items])
    torch.manual_seed(0)
    model = wrap_for_training(loaded.model, TrainConfig(
        lora_r=4, lora_dropout=0.0, target_modules=("all-linear",),
        gradient_checkpointing=checkpointing))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    model.train()
    loss = batch_loss(model, batch, list(range(len(items))), torch.tensor(loaded.letter_ids),
                      loaded.tokenizer.pad_token_id, "kl", share_prefix=not checkpointing)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads, model.is_gradient_checkpointing


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_model_dir, toy_items):
    loss_plain, grads_plain, on_plain = _loss_and_grads(tiny_model_dir, toy_items, False)
    loss_ckpt, grads_ckpt, on_ckpt = _loss_and_grads(tiny_model_dir, toy_items, True)
    assert on_ckpt and not on_plain
    assert loss_ckpt == pytest.approx(loss_plain, rel=1e-5)
    assert grads_plain.keys() == grads_ckpt.keys() and grads_plain
    for name in grads_plain:
        torch.testing.assert_close(grads_ckpt[name], grads_plain[name], rtol=1e-4, atol=1e-6)
