"""Loading a transformers causal LM and its tokenizer by name or path
(:mod:`~surveytune.backends.model_names`), on a device in a dtype
(:mod:`~surveytune.backends.devices`), with the option letters' token ids checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surveytune.backends.devices import (
    DTYPES,
    process_gpu,
    quantization_config,
    resolve_device,
    resolve_dtype,
)
from surveytune.backends.errors import ModelError, one_line
from surveytune.backends.model_names import DEFAULT_MODEL, resolve_model
from surveytune.backends.scoring import letter_token_ids


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: str = "auto", device: str = "cpu",
               trust_remote_code: bool = False, load_in_8bit: bool = False,
               load_in_4bit: bool = False) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (safetensors only, no remote code unless asked) on
    ``device`` (see :func:`resolve_device`) in ``dtype`` (see :func:`resolve_dtype`)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    quantization = quantization_config(device, load_in_8bit=load_in_8bit,
                                       load_in_4bit=load_in_4bit)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path)
    gpu = process_gpu(device)
    extra: dict[str, Any] = {}
    if quantization is not None:
        extra = {"quantization_config": quantization, "device_map": {"": gpu}}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=DTYPES[dtype], use_safetensors=True,
            trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model {name_or_path!r}: {one_line(exc)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if quantization is None and device != "cpu":
        model.to(device)
    model.eval()
    return model, tokenizer


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False) -> Any:
    """Only the tokenizer of a model (for backends that score on a server)."""
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the tokenizer of {name_or_path!r}: "
                         f"{one_line(exc)}") from None


@dataclass
class LoadedModel:
    """A model, its tokenizer and the ids of the option letters (what training needs:
    :class:`~surveytune.backends.base.Trainable`)."""

    model: Any
    tokenizer: Any
    letter_ids: list[int]
    name: str

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL, *, dtype: str = "float32",
             device: str = "cpu", trust_remote_code: bool = False,
             load_in_8bit: bool = False, load_in_4bit: bool = False) -> LoadedModel:
        model, tokenizer = load_model(name_or_path, dtype=dtype, device=device,
                                      trust_remote_code=trust_remote_code,
                                      load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit)
        return cls(model, tokenizer, letter_token_ids(tokenizer), name_or_path)
