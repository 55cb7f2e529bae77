"""The scoring interface: the registry, the hf backend behind it, a second backend plugged in
through the registry (priors and order averaging work for it too), training refused on any
backend but hf, devices and dtypes, and gradient checkpointing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surveytune.backends.base import BACKENDS, Backend, load_backend, register_backend
from surveytune.backends.hf import HFBackend
from surveytune.backends.models import ModelError, resolve_device, resolve_dtype
from surveytune.backends.scoring import Prediction
from surveytune.simulator import Simulator
from surveytune.training.recipe import Batchable, TrainConfig, batch_loss, wrap_for_training


class RescaledHF:
    """A second backend built on the first: the hf backend's letter log-probabilities times
    ``temperature`` (a real, different engine; the log prior is added afterwards, as the
    interface says)."""

    name = "rescaled"

    def __init__(self, model: str, temperature: float = 0.5, **options) -> None:
        self.inner = load_backend("hf", model, **options)
        self.model_name, self.tokenizer, self.temperature = model, self.inner.tokenizer, temperature

    def score(self, prompts, n_options, *, chat, log_priors=None, progress=True,
              desc="scoring") -> list[Prediction]:
        plain = self.inner.score(prompts, n_options, chat=chat, progress=False)
        out = []
        for i, p in enumerate(plain):
            logits = self.temperature * np.log(p.distribution)
            if log_priors is not None:
                logits = logits + np.asarray(log_priors[i])
            dist = np.exp(logits - logits.max())
            out.append(Prediction(dist / dist.sum(), p.letter_mass))
        return out

    def context_length(self) -> int | None:
        return self.inner.context_length()


@pytest.fixture
def rescaled_registered():
    register_backend("rescaled", RescaledHF)
    yield
    BACKENDS.pop("rescaled")


def test_hf_backend_is_the_default_and_satisfies_the_protocol(tiny_model_dir, toy_items):
    sim = Simulator.load(str(tiny_model_dir), chat=False, device="cpu")
    assert isinstance(sim.backend, HFBackend) and isinstance(sim.backend, Backend)
    assert sim.backend.name == "hf" and sim.model.device.type == "cpu"
    direct = sim.backend.score(sim.prompts(toy_items), [i.n_options for i in toy_items],
                               chat=False, progress=False)
    via_sim = sim.predict(toy_items, progress=False)
    for a, b in zip(direct, via_sim):
        np.testing.assert_allclose(a.distribution, b.distribution)
        assert a.letter_mass == b.letter_mass and 0 < a.letter_mass < 1


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ModelError, match="unknown backend 'nope'"):
        Simulator.load(str(tiny_model_dir), backend="nope")


def test_a_registered_backend_gets_priors_and_order_averaging(tiny_model_dir, toy_items,
                                                              rescaled_registered):
    hf = Simulator.load(str(tiny_model_dir), chat=False)
    other = Simulator.load(str(tiny_model_dir), chat=False, backend="rescaled",
                           temperature=0.5)
    assert other.backend.name == "rescaled"
    base_hf = hf.predict(toy_items, progress=False)
    base_other = other.predict(toy_items, progress=False)
    for a, b in zip(base_hf, base_other):
        expected = a.distribution ** 0.5 / (a.distribution ** 0.5).sum()
        np.testing.assert_allclose(b.distribution, expected, rtol=1e-5)
    # a prior (added to the letter log-probabilities) anchors this backend's predictions too
    logp = [np.log(np.linspace(1, 2, i.n_options) / np.linspace(1, 2, i.n_options).sum())
            for i in toy_items]

    class Fixed:
        name = "fixed"

        def log_priors(self, items):
            return [logp[toy_items.index(i)] for i in items]

    other.prior = Fixed()
    anchored = other.predict(toy_items, progress=False)
    for b, a, lp in zip(base_other, anchored, logp):
        expected = b.distribution * np.exp(lp)
        np.testing.assert_allclose(a.distribution, expected / expected.sum(), rtol=1e-5)
    other.order_average = True
    averaged = other.predict(toy_items, progress=False)
    backward = other.predict_reversed(toy_items, progress=False)
    for a, b in zip(averaged, backward):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-9)


def test_fit_needs_the_hf_backend(tiny_model_dir, toy_items, tmp_path, rescaled_registered):
    sim = Simulator.load(str(tiny_model_dir), chat=False, backend="rescaled")
    with pytest.raises(ModelError, match="training need the hf backend"):
        sim.fit(toy_items, toy_items, tmp_path / "run")
    assert not (tmp_path / "run").exists()


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
    sim = Simulator(loaded, chat=False)
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
