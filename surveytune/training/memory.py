"""Keeping training's memory to what the model, activations and optimizer need.

Three things held most of the resident set of a LoRA run on CPU (``bench/training_memory.py``):

* LoRA dropout. On CPU, ``torch.nn.functional.dropout`` saves its scaled noise for backward, a
  full-size tensor in the input's dtype (float32 for the inputs of q/k/v/gate/up), once per
  adapted module: about half of the activations saved by a training step.
  :class:`MaskDropout` draws the same noise (same random stream, same output, same gradient)
  and saves a one-byte mask instead.
* bfloat16 casts of the frozen weights. Under autocast every linear layer casts its float32
  weight to bfloat16 on each call and autograd keeps the cast for backward; a training step
  runs the model twice (the shared prompt start, then the rest), so it held two bfloat16 copies
  of every frozen weight (~0.5 GB for the default model). :func:`frozen_weights_cast` casts them
  once per step instead (same values, one copy).

glibc's malloc also keeps freed activations in its heaps (it raises its mmap threshold after
large blocks are freed), so the resident set sits above the live peak. Fixing the threshold
low (``mallopt``) gives that memory back but made every training step about 10x slower on
CPU (each activation then costs page faults; bench/training_memory.py vs a plain step,
2026-11-28), so it is not done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class _MaskDropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        # What ATen's CPU dropout does (bernoulli noise in x's dtype, scaled, multiplied).
        noise = torch.empty_like(x).bernoulli_(1 - p)
        noise.div_(1 - p)
        ctx.save_for_backward(noise != 0)
        ctx.p = p
        return x * noise

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype).div_(1 - ctx.p), None


class MaskDropout(torch.nn.Dropout):
    """``torch.nn.Dropout`` with the same numbers that keeps a bool mask for backward
    instead of the float noise (a quarter of the memory for float32 inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or not torch.is_grad_enabled():
            return super().forward(x)
        if self.p == 1:
            return torch.zeros_like(x)
        return _MaskDropoutFunction.apply(x, self.p)


def lean_lora_dropout(model: Any) -> int:
    """Replace the ``nn.Dropout`` modules of peft's LoRA layers by :class:`MaskDropout`;
    returns how many were replaced."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in list(dropouts.items()):
            if type(dropout) is torch.nn.Dropout:
                dropouts[name] = MaskDropout(dropout.p, inplace=dropout.inplace)
                replaced += 1
    return replaced


@contextmanager
def frozen_weights_cast(model: Any, dtype: torch.dtype | None) -> Iterator[None]:
    """Within the block, the frozen float32 weights of ``model``'s ``nn.Linear`` layers are
    ``dtype`` copies, made once; the originals are put back after it. For a bfloat16 autocast
    forward this gives the same numbers as autocast's own per-call casts, which backward keeps
    once per call. ``dtype=None`` does nothing."""
    swapped = []
    if dtype is not None:
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if (type(module) is torch.nn.Linear and weight is not None
                    and not weight.requires_grad and weight.dtype == torch.float32):
                swapped.append((module, weight))
                module.weight = torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)
    try:
        yield
    finally:
        for module, weight in swapped:
            module.weight = weight
