"""Training's memory savers change no number (surveytune.training.memory)."""

from __future__ import annotations

import pytest
import torch

from surveytune.backends.hf import HFBackend
from surveytune.backends.models import LoadedModel
from surveytune.training.memory import (
    MaskDropout,
    frozen_weights_cast,
    lean_lora_dropout,
)
from surveytune.training.recipe import TrainConfig, wrap_for_training


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_dropout_gives_the_same_output_and_gradient(dtype):
    x = torch.randn(4, 7, 33, dtype=dtype)
    runs = []
    for module in (torch.nn.Dropout(0.3), MaskDropout(0.3)):
        torch.manual_seed(5)
        leaf = x.clone().requires_grad_(True)
        out = module(leaf)
        (out * torch.arange(out.numel(), dtype=dtype).reshape(out.shape)).sum().backward()
        runs.append((out.detach(), leaf.grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert (runs[0][0] == 0).any() and (runs[0][0] != 0).any()


def test_mask_dropout_saves_a_bool_mask_and_is_identity_in_eval():
    saved = []
    x = torch.randn(8, 16, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        MaskDropout(0.5)(x)
    assert [t.dtype for t in saved] == [torch.bool]
    module = MaskDropout(0.5).eval()
    assert module(x) is x


def test_lora_dropouts_are_replaced(tiny_model_dir):
    loaded = LoadedModel.load(str(tiny_model_dir))
    model = wrap_for_training(loaded.model, TrainConfig(lora_r=2, lora_dropout=0.1,
                                                        target_modules=("all-linear",)))
    kinds = {type(m) for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert kinds == {MaskDropout}
    assert lean_lora_dropout(model) == 0  # nothing left to replace


def _same(saved: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a tensor kept for backward is a bfloat16 copy of ``weight`` (or its transpose)."""
    for candidate in (saved, saved.t() if saved.dim() == 2 else saved):
        if candidate.shape == weight.shape and torch.equal(candidate,
                                                           weight.to(torch.bfloat16)):
            return True
    return False


def test_frozen_weights_cast_once_gives_the_same_loss_and_gradients(tiny_model_dir, toy_items):
    from surveytune.backends.scoring import encode
    from surveytune.simulator import Simulator
    from surveytune.training.recipe import Batchable, batch_loss

    loaded = LoadedModel.load(str(tiny_model_dir))
    sim = Simulator(HFBackend(loaded), chat=True)  # a shared prompt start: the model runs twice
    ids = encode(loaded.tokenizer, sim.prompts(toy_items), chat=True)
    batch = Batchable(ids, [i.distribution for i in toy_items])
    model = wrap_for_training(loaded.model, TrainConfig(lora_r=4, lora_dropout=0.0,
                                                        target_modules=("all-linear",)))
    letters = torch.tensor(loaded.letter_ids)
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    weights = [m.weight for m in model.modules() if type(m) is torch.nn.Linear
               and not m.weight.requires_grad]
    results = []
    for cast in (None, torch.bfloat16):
        model.zero_grad(set_to_none=True)
        saved: list = []

        def pack(t, saved=saved):
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16), frozen_weights_cast(model, cast):
                loss = batch_loss(model, batch, list(range(len(toy_items))), letters,
                                  loaded.tokenizer.pad_token_id, "kl")
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        weight_copies = len({t.untyped_storage().data_ptr() for t in saved for w in weights
                             if t.dtype == torch.bfloat16 and _same(t, w)})
        results.append((loss.detach(), grads, weight_copies))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
    # Every frozen weight is put back afterwards.
    assert {id(p) for p in model.parameters() if not p.requires_grad} == frozen
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # Backward keeps at most one bfloat16 copy of each frozen weight, not one per model call.
    assert 0 < results[1][2] <= len(weights) < results[0][2]
