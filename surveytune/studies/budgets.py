"""Budgets and recipes: how much of a study to run and how its model is fine-tuned.

Budgets are plain dataclasses (:class:`Budget`) that a user can read and copy; each study
(:mod:`surveytune.studies.wvs`, :mod:`surveytune.studies.gss`) defines its own, and the runner
(:mod:`surveytune.studies.runner`) runs one. A recipe (:data:`RECIPES`) is how the fine-tuned
model is made, shared by the studies.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from surveytune.data.items import DataError
from surveytune.data.splits import PAPER_EVAL_SPLITS
from surveytune.training.recipe import TrainConfig


@dataclass(frozen=True)
class Budget:
    """How much of the study to run.

    ``question_fraction`` keeps a seeded fraction of the WVS questions (per question group,
    the same questions in training and every test split; valid stays whole): a smaller study
    with the same design.
    ``eval_items`` then samples whole questions per split (None: every item kept);
    ``goqa_items`` does the same for the unseen survey, ``valid_items`` for valid (None:
    as ``eval_items``); ``valid_zh`` is always the Chinese twin of valid's sample.
    ``order_probe_items`` of the scored valid items (a seeded question sample; 0: none) are
    scored again with their options reversed, to measure how much each model's answer depends
    on option order (the options as given are valid's own predictions).
    """

    name: str
    description: str
    train: TrainConfig
    eval_items: int | None
    goqa_items: int | None
    splits: tuple[str, ...] = PAPER_EVAL_SPLITS
    question_fraction: float | None = None
    order_probe_items: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    valid_items: int | None = None
    prompt: str = "paper"  # the prompt style (surveytune.methods.prompts.PROMPT_STYLES)


RECIPES: dict[str, dict[str, Any]] = {
    # Prior-anchored (surveytune.methods.priors): the model's letter logits are added to the
    # log of the region-mean of the training countries; 6 training countries are held out
    # (seeded) to validate unseen-country ability; the checkpoint is chosen on the mean of the
    # valid and held-out losses; afterwards the model's weight against the prior is calibrated
    # on them.
    # The question-first prompt with batches of one question's populations computes each
    # question part once (chosen on validation data, docs/ablations.md "Prompt template").
    "anchored": dict(prior="region-mean", heldout_populations=6, select_on="mean",
                     calibrate=True, questions_per_batch=1, prompt="question-first"),
    # The paper's method as this study ran it before: no prior, checkpoint chosen on valid.
    "paper": dict(prior="none", heldout_populations=0, select_on="valid", calibrate=False,
                  questions_per_batch=0, prompt="paper"),
}
"""How the fine-tuned model is made, by name; ``reproduce --recipe``. The WVS budgets use
``anchored``; the GSS budgets ``paper`` (a region prior means nothing for US subgroups, and
holding 6 of its 16 training groups out would leave few to learn from)."""

# LoRA on every linear layer, r=16, lr 2e-4 (the prototype of METHOD.md §7); training runs
# forward/backward in bf16 autocast where the hardware computes bfloat16 natively, else in
# float32 (precision "auto", surveytune.backends.precision); scoring is float32 on the CPU.
_LORA_SETTINGS = dict(lora_r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=("all-linear",), loss="kl", batch_size=8,
                      precision="auto", seed=0)


def _training_part(recipe: str) -> dict[str, Any]:
    """A recipe's TrainConfig fields (its prompt style belongs to the budget)."""
    return {k: v for k, v in RECIPES[recipe].items() if k != "prompt"}


def lora_settings(recipe: str) -> dict[str, Any]:
    """The TrainConfig fields every budget shares (LoRA r=16 on every linear layer, KL,
    batches of 8) with ``recipe``'s; a budget adds its steps and learning rate."""
    return {**_LORA_SETTINGS, **_training_part(recipe)}


def with_recipe(budget: Budget, recipe: str | None) -> Budget:
    """The budget with its fine-tuning recipe replaced (see :data:`RECIPES`; None keeps the
    budget's own); the name says so when it changes."""
    if recipe is None:
        return budget
    if recipe not in RECIPES:
        raise DataError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}",
                        file="--recipe")
    settings = _training_part(recipe)
    prompt = RECIPES[recipe].get("prompt", budget.prompt)
    if prompt == budget.prompt and all(getattr(budget.train, key) == value
                                       for key, value in settings.items()):
        return budget
    # "method" in the description as before the flag was renamed, so earlier runs resume
    return replace(budget, name=f"{budget.name}-{recipe}",
                   description=f"{budget.description}; fine-tuned with the {recipe} method",
                   train=replace(budget.train, **settings), prompt=prompt)
