"""Fine-tuning a causal LM so its first-token letter distribution matches human answers.

Plain components: a config dataclass (:class:`~surveytune.training.config.TrainConfig`,
re-exported here), a loss from :mod:`surveytune.training.losses`, AdamW with a transformers
schedule, peft LoRA. The loop validates every ``eval_every`` steps (step 0
included, so "no fine-tuning" can win), keeps the adapter with the best validation loss,
and writes a checkpoint every ``checkpoint_every`` steps from which the same call resumes,
even after ``kill -9``. :func:`train` is a short loop over pieces: ``_setup`` (data, model,
optimizer, resume), ``_train_step``, ``_validate_and_keep`` and ``_checkpoint``. Saving and
loading weights (adapters, checkpoints; safetensors plus JSON, nothing pickled) live in
:mod:`surveytune.backends.adapters`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from surveytune.backends.adapters import (
    checkpoint_state,
    existing_dir,
    load_adapter_weights,
    load_checkpoint,
    save_adapter,
    save_checkpoint,
    update_adapter_meta,
)
from surveytune.backends.precision import PrecisionChoice, choose_precision
from surveytune.backends.scoring import (
    encode,
    letter_log_probs,
    logits_with_shared_starts,
    padded_log_priors,
    plan_prefixes,
)
from surveytune.data.items import SurveyItem
from surveytune.data.records import TrainingRecord
from surveytune.data.splits import carve_populations
from surveytune.methods.calibration import Calibration
from surveytune.methods.priors import Prior, make_prior
from surveytune.training.batches import Batchable, step_items
from surveytune.training.batches import epoch_order as epoch_order  # re-exported
from surveytune.training.config import TrainConfig
from surveytune.training.distributed import Group
from surveytune.training.losses import LOSSES, padded_targets
from surveytune.training.memory import frozen_weights_cast, lean_lora_dropout
from surveytune.training.validation import fit_on_validation, validate


def data_fingerprint(items: Sequence[SurveyItem]) -> str:
    """sha256 of the items' canonical records: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class TrainResult:
    out_dir: Path
    best_step: int
    best_valid_loss: float
    steps_done: int
    total_steps: int
    stopped_by: str
    history: list[dict[str, Any]] = field(default_factory=list)
    # What predicting with the kept weights needs besides them (also saved with the adapter):
    # the prior they were trained with and the calibration fitted on validation, when any.
    prior: Prior | None = None
    calibration: Calibration | None = None


def wrap_for_training(model: Any, config: TrainConfig) -> Any:
    """Add LoRA adapters (peft) or unfreeze all weights."""
    if config.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        return model
    from peft import LoraConfig, get_peft_model

    targets: Any = list(config.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets,
                      task_type="CAUSAL_LM")
    if getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing)
    model = get_peft_model(model, lora)
    lean_lora_dropout(model)  # same numbers, a quarter of the dropout's saved memory
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def enable_gradient_checkpointing(model: Any) -> None:
    """Non-reentrant activation checkpointing (works with frozen inputs, e.g. under LoRA)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "config"):
        model.config.use_cache = False


def batch_loss(model: Any, batch: Batchable, idx: Sequence[int], letter_ids: torch.Tensor,
               pad_id: int, loss_name: str, *, share_prefix: bool = True) -> torch.Tensor:
    """Mean loss of items ``idx`` with gradients (one forward pass, last position only).

    The starts the items share (chat header; under the question-first template a question
    and its options) run once for the batch (:func:`surveytune.backends.scoring.plan_prefixes`);
    gradients flow through them as through the rest. With LoRA dropout a shared start gets
    one dropout mask instead of one per row, otherwise the numbers are the same.
    """
    token_ids = [batch.token_ids[i] for i in idx]
    sizes = plan_prefixes(token_ids) if share_prefix else None
    logits = logits_with_shared_starts(model, token_ids, pad_id, sizes)
    n_options = [batch.n_options[i] for i in idx]
    prior = None if batch.log_priors is None else padded_log_priors(
        [batch.log_priors[i] for i in idx], max(n_options))
    log_probs, _ = letter_log_probs(logits, letter_ids, n_options, prior)
    targets = padded_targets([batch.distributions[i] for i in idx], max(n_options))
    return LOSSES[loss_name](targets.to(log_probs.device), log_probs,
                             batch.scale(idx, max(n_options)))


@dataclass
class _Run:
    """One training run as :func:`train` sets it up; the pieces below read and update it."""

    model: Any
    tokenizer: Any
    config: TrainConfig
    out: Path
    letter_ids: list[int]
    letters: torch.Tensor
    pad_id: int
    train_data: Batchable
    valid_sets: dict[str, tuple[Batchable, Sequence[SurveyItem]]]  # "valid", "heldout"
    prior: Prior | None
    fingerprint: dict[str, str]
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    total_steps: int
    state: dict[str, Any]           # what a checkpoint saves: step, history, best, ...
    save_extra: dict[str, Any]
    progress: bool
    group: Group = field(default_factory=Group)
    precision: PrecisionChoice | None = None
    # The validation sets' prior-free distributions at the kept step, for the calibration
    # (None after a resume: it scores them again).
    kept_distributions: dict[str, list[np.ndarray]] | None = None


def _setup(model: Any, tokenizer: Any, letter_ids: list[int],
           train_items: Sequence[SurveyItem], valid_items: Sequence[SurveyItem], prompts: Any,
           config: TrainConfig, out: Path, save_extra: dict[str, Any] | None,
           progress: bool, chat: bool) -> _Run:
    """Check the data, tokenise it, wrap the model, build optimizer and schedule, resume."""
    if not train_items:
        raise ValueError("no training items")
    if not valid_items:
        raise ValueError("no validation items: the checkpoint is chosen on valid")
    fingerprint = {"train": data_fingerprint(train_items), "valid": data_fingerprint(valid_items)}
    heldout_items: list[SurveyItem] = []
    if config.heldout_populations:
        train_items, heldout_items = carve_populations(train_items, config.heldout_populations,
                                                       seed=config.seed)
    prior = make_prior(config.prior, train_items)
    batchable = lambda items: Batchable(  # noqa: E731
        encode(tokenizer, prompts(items), chat=chat), [i.distribution for i in items],
        [i.scale_positions for i in items],
        None if prior is None else prior.log_priors(items),
        [f"{i.survey}\x1f{i.question_id}\x1f{i.language}" for i in items])
    train_data = batchable(train_items)
    valid_sets = {}
    for name, items in (("valid", valid_items), ("heldout", heldout_items)):
        if items:
            items = _subsample(items, config.eval_items, config.seed)
            valid_sets[name] = (batchable(items), items)
    pad_id = tokenizer.pad_token_id

    torch.manual_seed(config.seed)
    model = wrap_for_training(model, config)
    letters = torch.tensor(letter_ids, device=model.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    per_step = config.batch_size * config.grad_accum
    total_steps = math.ceil(config.epochs * len(train_items) / per_step)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    from transformers import get_scheduler

    scheduler = get_scheduler(
        "constant_with_warmup" if config.schedule == "constant" else config.schedule,
        optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps),
        num_training_steps=total_steps)

    config_record = json.loads(json.dumps(asdict(config)))  # as it reads back from JSON
    state: dict[str, Any] = {"step": 0, "elapsed_s": 0.0, "best_valid_loss": None,
                             "best_step": None, "history": [], "config": config_record,
                             "fingerprint": fingerprint, "total_steps": total_steps}
    run = _Run(model, tokenizer, config, out, letter_ids, letters, pad_id, train_data,
               valid_sets, prior, fingerprint, params, optimizer, scheduler, total_steps,
               state, save_extra or {}, progress,
               precision=choose_precision(config.precision, model.device.type))
    _resume(run)
    return run


def _subsample(items: Sequence[SurveyItem], size: int | None, seed: int) -> list[SurveyItem]:
    """A seeded subsample of ``size`` items (all when None or larger), in input order."""
    if not size or size >= len(items):
        return list(items)
    pick = np.random.default_rng(seed).choice(len(items), size, replace=False)
    return [items[i] for i in sorted(pick)]


def _resume(run: _Run) -> None:
    """Continue from ``out/checkpoint`` when it holds this run (same config and data)."""
    checkpoint = existing_dir(run.out / "checkpoint")
    if checkpoint is None:
        return
    saved = checkpoint_state(checkpoint)
    # Options added since the checkpoint was written count as their defaults.
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    saved_config = {**{k: v for k, v in defaults.items() if k not in saved["config"]},
                    **saved["config"]}
    if saved["fingerprint"] != run.fingerprint or saved_config != run.state["config"]:
        raise ValueError(
            f"{run.out} holds a run with another configuration or other data; "
            "use a new output folder (or delete it to start over)")
    run.state = load_checkpoint(checkpoint, run.model, run.optimizer)
    for _ in range(run.state["step"]):
        run.scheduler.step()
    if run.progress:
        tqdm.write(f"resuming from step {run.state['step']} of {run.total_steps} in {run.out}")


def _train_step(run: _Run, step: int, lengths: Sequence[int],
                order_cache: dict[tuple, list[int]]) -> float:
    """One optimizer step (``grad_accum`` forward/backward passes); returns its loss."""
    config, model = run.config, run.model
    per_step = config.batch_size * config.grad_accum
    torch.manual_seed(config.seed * 1_000_003 + step)  # dropout, reproducible on resume
    idx = step_items(step, lengths, config.batch_size, per_step, config.seed, order_cache,
                     run.train_data.groups, config.questions_per_batch)
    run.optimizer.zero_grad(set_to_none=True)
    total = 0.0
    bf16 = run.precision is not None and run.precision.used == "bf16-autocast"
    for start in range(0, per_step, config.batch_size):
        mine = run.group.shard(idx[start:start + config.batch_size])  # all of it in one process
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16), \
                frozen_weights_cast(model, torch.bfloat16 if bf16 else None):
            loss = batch_loss(model, run.train_data, mine, run.letters, run.pad_id, config.loss,
                              share_prefix=not config.gradient_checkpointing) / config.grad_accum
        loss.backward()
        total += loss.item()
    run.group.average_gradients(run.params)  # several processes: the global batch's gradient
    total = run.group.average(total)
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    return total


def _validate_and_keep(run: _Run, step: int) -> None:
    """Validate; when the loss is the best so far, save the weights as the adapter."""
    state = run.state
    record: dict[str, Any] = {"step": step}
    distributions = {}
    for name, (data, items) in run.valid_sets.items():
        scores, distributions[name] = validate(run.model, data, items, run.letter_ids,
                                               run.pad_id, run.config, name)
        record.update(scores)
    select_on = run.config.select_on
    record["selection_loss"] = (
        (record["valid_loss"] + record["heldout_loss"]) / 2 if select_on == "mean"
        else record[f"{select_on}_loss"])
    state["history"].append(record)
    if state["best_valid_loss"] is None or record["selection_loss"] < state["best_valid_loss"]:
        state["best_valid_loss"], state["best_step"] = record["selection_loss"], step
        run.kept_distributions = distributions
        if run.group.main:
            save_adapter(run.model, run.tokenizer, run.out / "adapter", {
                **run.save_extra, "train_config": asdict(run.config), "step": step,
                "valid": record, "fingerprint": run.fingerprint}, prior=run.prior)
        run.group.barrier()
    if run.progress:
        scores = ", ".join(f"{name} loss {record[name + '_loss']:.4f} 1-jsd "
                           f"{record[name + '_1-jsd']:.4f}" for name in run.valid_sets)
        tqdm.write(f"step {step}: {scores} (best step {state['best_step']})")


def _checkpoint(run: _Run, started: float) -> None:
    run.state["elapsed_s"] = time.monotonic() - started
    if run.group.main:
        save_checkpoint(run.out / "checkpoint", run.model, run.optimizer, run.state)
    run.group.barrier()


def _finish(run: _Run, stopped_by: str) -> TrainResult:
    """Write ``training.json`` and load the kept (best) weights into the model."""
    state = run.state
    if run.group.main:
        TrainingRecord(
            config=asdict(run.config), fingerprint=run.fingerprint, steps_done=state["step"],
            total_steps=run.total_steps, stopped_by=stopped_by, best_step=state["best_step"],
            best_valid_loss=state["best_valid_loss"], elapsed_s=state["elapsed_s"],
            history=state["history"], train_loss=state.get("train_loss", []),
            precision=run.precision.to_dict() if run.precision else {},
            extra=run.save_extra).write(run.out)
    run.group.barrier()
    load_adapter_weights(run.model, run.out / "adapter")
    run.model.eval()
    calibration = None
    if run.config.calibrate:
        calibration = fit_on_validation(run.model, run.valid_sets, run.letter_ids, run.pad_id,
                                        run.config.batch_size, run.prior,
                                        progress=run.progress and run.group.main,
                                        scored=run.kept_distributions)
        if run.group.main:
            update_adapter_meta(run.out / "adapter", calibration=calibration.to_dict())
            if run.progress:
                tqdm.write(f"calibration: scales {calibration.scales} fitted on "
                           f"{calibration.fitted_on} validation items")
        run.group.barrier()
    return TrainResult(run.out, state["best_step"], state["best_valid_loss"], state["step"],
                       run.total_steps, stopped_by, state["history"], prior=run.prior,
                       calibration=calibration)


def train(model: Any, tokenizer: Any, letter_ids: list[int], train_items: Sequence[SurveyItem],
          valid_items: Sequence[SurveyItem], prompts: Any, config: TrainConfig,
          out_dir: str | os.PathLike, *, save_extra: dict[str, Any] | None = None,
          progress: bool = True, chat: bool = False) -> tuple[Any, TrainResult]:
    """Fine-tune ``model`` on ``train_items``, choosing the checkpoint on ``valid_items``.

    ``prompts(items) -> list[str]`` renders prompts; ``chat`` says whether they are chat
    prompts (they then get no special tokens added, see :func:`surveytune.backends.scoring.encode`).
    Returns the trained model (the best
    checkpoint's weights loaded) and a :class:`TrainResult` (with the prior and calibration to
    predict with). Writes into ``out_dir``:
    ``adapter/`` (best weights + ``surveytune.json``), ``checkpoint/`` (resume state) and
    ``training.json`` (:class:`~surveytune.data.records.TrainingRecord`).
    """
    # One process, or those of `accelerate launch` (distributed.py); joining first means no
    # process touches out_dir before the main one has claimed it.
    group = Group.start()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.batch_size % group.size:
        raise ValueError(f"--batch-size {config.batch_size} is not a multiple of the "
                         f"{group.size} processes")
    run = _setup(model, tokenizer, letter_ids, train_items, valid_items, prompts, config, out,
                 save_extra, progress and group.main, chat)
    run.group = group
    if run.progress:
        tqdm.write(run.precision.describe())
    state, total_steps = run.state, run.total_steps
    lengths = [len(t) for t in run.train_data.token_ids]
    order_cache: dict[tuple, list[int]] = {}
    started = time.monotonic() - state["elapsed_s"]
    stopped_by = "steps"
    evaluated = {r["step"] for r in state["history"]}
    if config.eval_every and 0 not in evaluated and state["step"] == 0:
        _validate_and_keep(run, 0)
    run.model.train()
    bar = tqdm(total=total_steps, initial=state["step"], desc="training", unit="step",
               disable=not run.progress)
    while state["step"] < total_steps:
        step = state["step"]
        if run.group.any(config.max_minutes is not None
                         and time.monotonic() - started > 60 * config.max_minutes):
            stopped_by = "max_minutes"
            break
        total = _train_step(run, step, lengths, order_cache)
        state["step"] = step + 1
        state.setdefault("train_loss", []).append([step + 1, total])
        bar.update(1)
        bar.set_postfix(loss=f"{total:.4f}")
        done = state["step"] == total_steps
        if config.eval_every and (state["step"] % config.eval_every == 0 or done):
            _validate_and_keep(run, state["step"])
            run.model.train()
        elif not config.eval_every and done:
            _validate_and_keep(run, state["step"])
        if state["step"] % config.checkpoint_every == 0 or done:
            _checkpoint(run, started)
    bar.close()
    if stopped_by == "max_minutes":
        state["elapsed_s"] = time.monotonic() - started
        if not any(r["step"] == state["step"] for r in state["history"]):
            _validate_and_keep(run, state["step"])
        if run.group.main:
            save_checkpoint(out / "checkpoint", run.model, run.optimizer, state)
        run.group.barrier()
    return run.model, _finish(run, stopped_by)
