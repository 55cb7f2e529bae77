"""Where and how local weights sit: the device (``--device``), the GPU of a process under
``accelerate launch`` (``LOCAL_RANK``), the dtype (``--dtype auto``) and 4-/8-bit bases."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch

from surveytune.backends.errors import ModelError
from surveytune.backends.precision import choose_scoring_dtype

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> str:
    """``auto``: the GPU when there is one (CUDA, else Apple MPS), else the CPU; a named GPU
    that is not there is refused with one line."""
    if device not in DEVICES:
        raise ModelError(f"--device: unknown device {device!r}; choose one of "
                         f"{', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: no CUDA GPU is visible to torch on this machine")
    if device == "mps" and not has_mps:
        raise ModelError("--device mps: Apple's MPS backend is not available on this machine")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 on a GPU that supports it, float32 on the CPU (exact scoring)."""
    if dtype not in DTYPE_CHOICES:
        raise ModelError(f"--dtype: unknown dtype {dtype!r}; choose one of "
                         f"{', '.join(DTYPE_CHOICES)}")
    return choose_scoring_dtype(dtype, device).used


def process_gpu(device: str) -> int:
    """The GPU index of this process on ``cuda``: its ``LOCAL_RANK`` under ``accelerate
    launch`` (one GPU per launched process, made torch's current device), else 0."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(rank)
        return rank
    return 0


def quantization_config(device: str, *, load_in_8bit: bool = False,
                        load_in_4bit: bool = False) -> Any:
    """A bitsandbytes config for a 8- or 4-bit frozen base (LoRA on top), or None; refused
    with one line where it cannot work: not on CUDA, or bitsandbytes is not installed."""
    if not (load_in_8bit or load_in_4bit):
        return None
    flag = "--load-in-8bit" if load_in_8bit else "--load-in-4bit"
    if load_in_8bit and load_in_4bit:
        raise ModelError("--load-in-8bit and --load-in-4bit exclude each other")
    if device != "cuda":
        raise ModelError(f"{flag} needs a CUDA GPU (bitsandbytes); the device is {device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"{flag} needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16)
