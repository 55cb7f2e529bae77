"""What defines a fine-tuning run: :class:`TrainConfig` and the one table of what each of its
parameters may be (:attr:`TrainConfig.CONSTRAINTS`), checked when a config is made, so the
Python API and ``surveytune train`` refuse the same values with the same words
(:mod:`surveytune.methods.params`; the command line names the flag instead of the field).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from surveytune.backends.precision import PRECISIONS
from surveytune.methods.params import Constraint, Interval, Options, ParameterError, check_params
from surveytune.methods.priors import PRIOR_NAMES
from surveytune.training.losses import LOSSES

__all__ = ["SCHEDULES", "SELECT_ON", "TRAIN_METHODS", "TrainConfig"]

TRAIN_METHODS = ("lora", "full")
SCHEDULES = ("cosine", "linear", "constant")
SELECT_ON = ("valid", "heldout", "mean")

_AT_LEAST_1 = Interval(1, integer=True)
_AT_LEAST_0 = Interval(0, integer=True)
_POSITIVE = Interval(0, closed="neither")
_BOOL = Options((False, True))


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run. Defaults follow the paper (METHOD.md §2)."""

    method: str = "lora"                      # "lora" or "full"
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")  # or ("all-linear",)
    loss: str = "kl"                          # kl | js | emd | ce
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None              # caps the step count from `epochs`
    max_minutes: float | None = None          # wall-clock budget, summed over resumes
    warmup_ratio: float = 0.05
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    eval_every: int = 200                     # steps; 0 validates only at the end
    eval_items: int | None = None             # a seeded subsample of valid, for speed
    checkpoint_every: int = 25
    seed: int = 0
    # "bf16-autocast" runs training forward/backward in bfloat16 with float32 master weights
    # (~1.4x faster on CPUs with AVX512-BF16, ~20x slower on CPUs that emulate bfloat16);
    # "auto" uses it only where the device computes bfloat16 natively
    # (surveytune.backends.precision).
    # Validation and scoring stay float32.
    precision: str = "auto"
    # Prior-anchored prediction (surveytune.methods.priors): the letter logits are added to
    # the log of a baseline computed from the training data; "none" is the paper's method.
    prior: str = "none"
    # Whole training populations held out (seeded) to validate unseen-population ability, and
    # which validation loss chooses the checkpoint: "valid", "heldout" or "mean" of the two.
    heldout_populations: int = 0
    select_on: str = "valid"
    # After training, fit how much of the model to add to the prior
    # (surveytune.methods.calibration), on the validation items: one scale for seen questions,
    # one for unseen ones.
    calibrate: bool = False
    # Recompute activations in backward instead of keeping them (less memory, ~30% slower);
    # the prompt start is then run per row (a KV cache cannot be checkpointed).
    gradient_checkpointing: bool = False
    # 0: batches of random items; N: each batch holds the populations of about N questions,
    # whose question part the question-first template computes once (surveytune.training.batches).
    questions_per_batch: int = 0

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "method": Options(TRAIN_METHODS),
        "lora_r": _AT_LEAST_1,
        "lora_alpha": _POSITIVE,
        "lora_dropout": Interval(0, 1, closed="left"),
        "loss": Options(tuple(LOSSES)),
        "learning_rate": _POSITIVE,
        "weight_decay": Interval(0),
        "batch_size": _AT_LEAST_1,
        "grad_accum": _AT_LEAST_1,
        "epochs": _POSITIVE,
        "max_steps": (None, _AT_LEAST_1),
        "max_minutes": (None, _POSITIVE),
        "warmup_ratio": Interval(0, 1),
        "schedule": Options(SCHEDULES),
        "max_grad_norm": Interval(0),
        "eval_every": _AT_LEAST_0,
        "eval_items": (None, _AT_LEAST_1),
        "checkpoint_every": _AT_LEAST_1,
        "seed": Interval(integer=True),
        "precision": Options(PRECISIONS),
        "prior": Options(PRIOR_NAMES),
        "heldout_populations": _AT_LEAST_0,
        "select_on": Options(SELECT_ON),
        "calibrate": _BOOL,
        "gradient_checkpointing": _BOOL,
        "questions_per_batch": _AT_LEAST_0,
    }
    """What each parameter but ``target_modules`` (any module names) may be, in field order
    (the first bad one is named)."""

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        check_params(vars(self), self.CONSTRAINTS, where="TrainConfig")
        if self.select_on != "valid" and self.heldout_populations < 1:
            # Another parameter is named in backticks: the command line names its flag there.
            raise ParameterError(f"{self.select_on!r} needs `heldout_populations` of at least "
                                 f"1, got {self.heldout_populations}", parameter="select_on",
                                 where="TrainConfig")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
