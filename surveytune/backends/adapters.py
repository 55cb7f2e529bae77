"""Trained weights on disk: adapters (the kept weights) and training checkpoints.

An adapter folder holds either a peft LoRA adapter (``adapter_config.json`` and
``adapter_model.safetensors``) or, after full fine-tuning, a whole model
(``model.safetensors``, its config and tokenizer), plus ``surveytune.json``: how the weights
came to be (base model, chat, template, step, validation record). A checkpoint folder holds
the trainable weights, the optimizer state (both safetensors) and ``state.json``. Nothing
is pickled: weights are read from safetensors only.

Both kinds of folder are written under a temporary name and swapped in, so one complete
version exists at every moment, also after ``kill -9`` (see :func:`existing_dir`).

Loading refuses, with one :class:`~surveytune.backends.errors.ModelError` line, an adapter
recorded for another base model, one whose weights do not fit the model, a ``.bin``-only
adapter and an unreadable ``surveytune.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from surveytune.backends.errors import ModelError
from surveytune.backends.models import LoadedModel
from surveytune.data.files import atomic_write_text
from surveytune.methods.calibration import Calibration
from surveytune.methods.priors import Prior

META_FILE = "surveytune.json"
LORA_WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "model.safetensors"
PRIOR_FILE = "prior.json"


# --- folders swapped in whole --------------------------------------------------------------

def swap_dir(tmp: Path, target: Path) -> None:
    """Replace ``target`` by ``tmp`` so that one complete version exists at every moment."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def existing_dir(target: Path) -> Path | None:
    """The complete version of a swapped folder, also if a swap was interrupted."""
    old = target.with_name(target.name + ".old")
    if (target / "state.json").exists() or (target / META_FILE).exists():
        return target
    if old.exists():
        return old
    return None


def _fresh_tmp(path: Path) -> Path:
    """A new empty folder beside ``path``, unique to this writer (two writers never share
    one), with the permissions a plain ``mkdir`` would give (``mkdtemp`` makes it private)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


# --- checkpoints ---------------------------------------------------------------------------

def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The parameters that train, by name, on the CPU."""
    return {name: p.detach().cpu().contiguous()
            for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> None:
    """Trainable weights, optimizer state and ``state`` (JSON), swapped in whole."""
    tmp = _fresh_tmp(path)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    opt = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value.detach().cpu().contiguous().reshape(-1)
               for idx, slots in opt["state"].items() for key, value in slots.items()}
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = dict(state, param_groups=opt["param_groups"])
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    swap_dir(tmp, path)


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint, without loading any weights."""
    return json.loads((path / "state.json").read_text())


def load_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load weights and optimizer state saved by :func:`save_checkpoint`; return its state."""
    state = checkpoint_state(path)
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = set(weights) ^ {n for n, p in params.items() if p.requires_grad}
    if missing:
        raise RuntimeError(f"checkpoint {path} does not match the model: {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    tensors = load_file(str(path / "optimizer.safetensors"))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    shapes = {i: p.shape for i, p in enumerate(
        p for group in optimizer.param_groups for p in group["params"])}
    for key, value in tensors.items():
        idx, slot = key.split(".", 1)
        shape = () if slot == "step" else shapes[int(idx)]
        slots.setdefault(int(idx), {})[slot] = value.reshape(shape)
    optimizer.load_state_dict({"state": slots, "param_groups": state.pop("param_groups")})
    return state


# --- adapters ------------------------------------------------------------------------------

@dataclass
class AdapterMeta:
    """``surveytune.json`` of an adapter folder, as far as loading needs it."""

    base_model: str | None = None      # the --model it was trained from
    chat: bool | None = None
    template: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # everything recorded (step, valid, ...)

    @classmethod
    def read(cls, adapter: Path) -> AdapterMeta:
        path = adapter / META_FILE
        if not path.exists():
            raise ModelError(f"{adapter} is not a surveytune adapter folder (no {META_FILE})")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: cannot read the adapter's record: {error}") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{path}: cannot read the adapter's record: not a JSON object")
        return cls(raw.get("base_model"), raw.get("chat"), raw.get("template"), raw)


def save_adapter(model: Any, tokenizer: Any, path: Path, meta: dict[str, Any],
                 prior: Prior | None = None) -> None:
    """Save trained weights (peft adapter, or the full model) with a JSON of how they came to
    be, and the prior the weights were trained with (if any), atomically."""
    tmp = _fresh_tmp(path)
    model.save_pretrained(tmp, safe_serialization=True)
    if not hasattr(model, "peft_config"):
        tokenizer.save_pretrained(tmp)
    if prior is not None:
        prior.save(tmp / PRIOR_FILE)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
    swap_dir(tmp, path)


CALIBRATION_KIND = "calibration"
"""``surveytune.json``'s ``kind`` in a calibration record: a folder without weights that holds
a prior and a calibration fit on validation data for a model as it is (any backend;
``surveytune calibrate``), loaded as ``--adapter`` is."""


def is_calibration_record(meta: AdapterMeta) -> bool:
    return meta.raw.get("kind") == CALIBRATION_KIND


def check_calibration_record(path: str | os.PathLike, meta: AdapterMeta, *, model: str,
                             elicit: str) -> None:
    """Refuse a calibration record fitted for another model or elicitation (one line)."""
    if meta.base_model not in (None, model):
        raise ModelError(f"{path} calibrates {meta.base_model!r}, not {model!r}; pass "
                         f"--model {meta.base_model}")
    fitted = meta.raw.get("elicit", "logprobs")
    if fitted != elicit:
        raise ModelError(f"{path} was fitted on --elicit {fitted}, not {elicit}")


def save_calibration_record(path: Path, meta: dict[str, Any], prior: Prior | None) -> None:
    """Write a calibration record (``surveytune.json`` with ``kind: calibration``, and the
    prior's file), atomically."""
    tmp = _fresh_tmp(path)
    if prior is not None:
        prior.save(tmp / PRIOR_FILE)
    (tmp / META_FILE).write_text(json.dumps({**meta, "kind": CALIBRATION_KIND}, indent=1,
                                            default=str))
    swap_dir(tmp, path)


def update_adapter_meta(adapter: Path, **fields: Any) -> None:
    """Add fields to an adapter's ``surveytune.json`` (atomically)."""
    path = (existing_dir(adapter) or adapter) / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(fields)
    atomic_write_text(path, json.dumps(meta, indent=1, default=str))


def load_calibration(adapter: str | os.PathLike, meta: AdapterMeta) -> Calibration | None:
    """The calibration recorded in an adapter's ``surveytune.json`` (None when not fitted)."""
    raw = meta.raw.get("calibration")
    if raw is None:
        return None
    try:
        return Calibration.from_dict(raw)
    except (ValueError, AttributeError) as error:
        raise ModelError(f"{Path(adapter) / META_FILE}: field 'calibration': {error}") from None


def load_prior(adapter: str | os.PathLike, meta: AdapterMeta) -> Prior | None:
    """The prior an adapter was trained with (None for the paper's method); an adapter that
    records a prior but lacks its file is refused."""
    name = (meta.raw.get("train_config") or {}).get("prior", "none")
    if name == "none":
        return None
    path = Path(adapter) / PRIOR_FILE
    if not path.exists():
        raise ModelError(f"adapter {adapter} was trained with the prior {name!r} but has no "
                         f"{PRIOR_FILE}")
    return Prior.load(path)


def load_adapter_weights(model: Any, path: Path) -> None:
    """Load the weights saved by :func:`save_adapter` into an already-wrapped model."""
    path = existing_dir(path) or path
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        weights = load_file(str(path / LORA_WEIGHTS))
        set_peft_model_state_dict(model, weights)
    else:
        from safetensors.torch import load_model

        load_model(model, str(path / FULL_WEIGHTS), strict=False)


def _same_model(recorded: str, given: str) -> bool:
    """The same name, or two spellings of one local folder."""
    if recorded == given:
        return True
    a, b = Path(recorded).expanduser(), Path(given).expanduser()
    return a.is_dir() and b.is_dir() and a.resolve() == b.resolve()


def _check_lora_fits(peft_model: Any, weights: dict[str, torch.Tensor], adapter: Path) -> None:
    from peft import get_peft_model_state_dict

    expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(peft_model).items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    unknown = sorted(set(got) - set(expected))
    if unknown or set(expected) - set(got):
        name = unknown[0] if unknown else sorted(set(expected) - set(got))[0]
        raise ModelError(f"adapter {adapter} does not fit the model: "
                         f"{'unexpected' if unknown else 'missing'} weight {name}")
    for key, shape in got.items():
        if expected[key] != shape:
            raise ModelError(f"adapter {adapter} does not fit the model: {key} has shape "
                             f"{list(shape)}, the model needs {list(expected[key])}")


def load_adapter(model: str, adapter: str | os.PathLike, *, dtype: str = "float32",
                 trust_remote_code: bool = False, device: str = "cpu",
                 load_in_8bit: bool = False, load_in_4bit: bool = False
                 ) -> tuple[LoadedModel, AdapterMeta]:
    """The base ``model`` with the trained weights of ``adapter`` (a folder written by
    training), ready to predict, and the adapter's record.

    A LoRA adapter is merged into the weights: same numbers, ~1.5x faster scoring (not on a
    4-/8-bit base, where it stays a separate LoRA).
    """
    options = {"dtype": dtype, "device": device, "trust_remote_code": trust_remote_code}
    quantized = {"load_in_8bit": load_in_8bit, "load_in_4bit": load_in_4bit}
    adapter = Path(adapter)
    meta = AdapterMeta.read(adapter)
    if meta.base_model is not None and not _same_model(str(meta.base_model), model):
        raise ModelError(f"adapter {adapter} was trained on {meta.base_model!r}, not on "
                         f"{model!r}; pass --model {meta.base_model}")
    if not (adapter / "adapter_config.json").exists():  # full fine-tuning saved a whole model
        if not (adapter / FULL_WEIGHTS).exists():
            raise ModelError(f"adapter {adapter} has no {FULL_WEIGHTS} (only safetensors "
                             "weights are loaded)")
        loaded = LoadedModel.load(str(adapter), **options)
        loaded.name = model
        return loaded, meta
    if not (adapter / LORA_WEIGHTS).exists():
        raise ModelError(f"adapter {adapter} has no {LORA_WEIGHTS} (only safetensors weights "
                         "are loaded)")
    try:
        weights = load_file(str(adapter / LORA_WEIGHTS))
    except Exception as error:  # safetensors raises its own error types
        raise ModelError(f"cannot read {adapter / LORA_WEIGHTS}: {error}") from None
    from peft import PeftConfig, get_peft_model, set_peft_model_state_dict

    try:
        config = PeftConfig.from_pretrained(str(adapter))
    except (OSError, ValueError, TypeError) as error:
        raise ModelError(f"cannot read {adapter / 'adapter_config.json'}: {error}") from None
    config.inference_mode = True
    loaded = LoadedModel.load(model, **options, **quantized)
    try:
        peft_model = get_peft_model(loaded.model, config)
    except ValueError as error:  # e.g. target modules the model does not have
        raise ModelError(f"adapter {adapter} does not fit the model: {error}") from None
    _check_lora_fits(peft_model, weights, adapter)
    set_peft_model_state_dict(peft_model, weights)
    if load_in_8bit or load_in_4bit:
        loaded.model = peft_model.eval()
    else:
        loaded.model = peft_model.merge_and_unload().eval()
    return loaded, meta
