"""The studies' budgets: how much of each study to run and how its model is fine-tuned.

The split names each study scores live here too, so that budgets and the study share them.
Budgets are plain dataclasses (:class:`Budget`) that a user can read and copy; the study
(:mod:`surveytune.studies.runner`) runs one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from surveytune.data.items import DataError
from surveytune.data.splits import GSS_SPLITS, PAPER_SPLITS, UNSEEN_SURVEY
from surveytune.training.recipe import TrainConfig

EVAL_SPLITS = (*(name for name in PAPER_SPLITS if name != "train"), UNSEEN_SURVEY)
TEST_SPLITS = tuple(name for name in EVAL_SPLITS if name != "valid")
"""The test splits: valid only chooses the checkpoint."""

VALID_ZH = "valid_zh"
"""The WVS valid split in the paper's Chinese prompt (``sft_wvs_zh_valid.json``), restricted
to the (country, question) pairs of valid: scored next to ``valid`` for a paired comparison."""
LANGUAGE_SPLITS = ("valid", VALID_ZH)

STUDIES = ("wvs", "gss")
"""``surveytune reproduce --study``: the WVS countries (the paper) or the GSS subgroups."""

GSS_EVAL_SPLITS = tuple(name for name in GSS_SPLITS if name != "train")
GSS_TEST_SPLITS = tuple(name for name in GSS_EVAL_SPLITS if name != "valid")


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
    splits: tuple[str, ...] = EVAL_SPLITS
    question_fraction: float | None = None
    order_probe_items: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    valid_items: int | None = None
    prompt: str = "paper"  # the prompt style (surveytune.methods.prompts.PROMPT_STYLES)


METHODS: dict[str, dict[str, Any]] = {
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
"""How the fine-tuned model is made, by name; ``reproduce --method``. The WVS budgets use
``anchored``; the GSS budgets ``paper`` (a region prior means nothing for US subgroups, and
holding 6 of its 16 training groups out would leave few to learn from)."""

# LoRA on every linear layer, r=16, lr 2e-4 (the prototype of METHOD.md §7); training runs
# forward/backward in bf16 autocast where the hardware computes bfloat16 natively, else in
# float32 (precision "auto", surveytune.backends.precision); scoring is float32 on the CPU.
_LORA_SETTINGS = dict(lora_r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=("all-linear",), loss="kl", batch_size=8,
                      precision="auto", seed=0)
def _training_part(method: str) -> dict[str, Any]:
    """A method's TrainConfig fields (its prompt style belongs to the budget)."""
    return {k: v for k, v in METHODS[method].items() if k != "prompt"}


_LORA = {**_LORA_SETTINGS, **_training_part("anchored")}
_LORA_PAPER = {**_LORA_SETTINGS, **_training_part("paper")}

_PROMPT = METHODS["anchored"]["prompt"]

BUDGETS = {
    "quick": Budget(
        "quick", "a smoke run in under 10 minutes on 2 CPU cores: the study on a seeded 10% of "
        "the WVS questions (per question group, every country), 60 LoRA steps of 8 items, "
        "checkpoint chosen at steps 0, 30 and 60 on 80 valid items and 80 items of 6 "
        "held-out training countries, every kept test item scored, 32 GOQA items, 64 valid "
        "items (whole questions, seeded) in English and the same in the paper's Chinese prompt",
        TrainConfig(**_LORA, learning_rate=5e-4, max_steps=60, warmup_ratio=0.1,
                    eval_every=30, eval_items=80, checkpoint_every=10),
        eval_items=None, goqa_items=32, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        question_fraction=0.1, valid_items=64, order_probe_items=48, prompt=_PROMPT),
    # Measured on 2 cores (reproduce, 2026-11-27, paper method): zero-shot scoring of every
    # test item and 200 GOQA items 8 min, 856 training steps ~4-5 s each, a 200-item
    # validation ~1 min, fine-tuned scoring 9 min; 99m50s end to end with validation every 285
    # steps. Valid in English and Chinese would add ~20 min for all 1586 pairs, so a seeded
    # question sample of about 600 is scored.
    "default": Budget(
        "default", "one epoch of LoRA on the train split less 6 seeded held-out countries "
        "(743 steps of 8 on the WVS data), checkpoint chosen at steps 0, 372 and 743 on 200 "
        "valid items and 200 items of the held-out countries, every test item scored, 200 "
        "GOQA items, about 600 valid items (whole questions, seeded) in English and in the "
        "paper's Chinese prompt",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=1.0, eval_every=372, eval_items=200),
        eval_items=None, goqa_items=200, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        valid_items=600, order_probe_items=200, prompt=_PROMPT),
    "full": Budget(
        "full", "the real study: 3 epochs of LoRA, checkpoint chosen on the whole valid split "
        "every 400 steps, every item of every split scored, GOQA included (many hours on CPU)",
        TrainConfig(**_LORA, learning_rate=2e-4, epochs=3.0, eval_every=400, eval_items=None),
        eval_items=None, goqa_items=None, splits=(*LANGUAGE_SPLITS, *TEST_SPLITS),
        order_probe_items=400, prompt=_PROMPT),
}

GSS_HELD_OUT = ("6 whole subgroups, one from each of 6 seeded attributes (every attribute keeps "
                "a training group); 10% of the questions for valid, 20% for the test splits")

GSS_BUDGETS = {
    "quick": Budget(
        "quick", "the GSS subgroup study (SubPOP-Eval, 133 questions x 22 US subgroups; "
        f"held out: {GSS_HELD_OUT}) in under 10 minutes on 2 CPU cores: 60 LoRA steps of 8, "
        "checkpoint chosen on 64 valid items at steps 0, 30 and 60, about 96 items (whole "
        "questions, seeded) per test split",
        TrainConfig(**_LORA_PAPER, learning_rate=5e-4, max_steps=60, warmup_ratio=0.1,
                    eval_every=30, eval_items=64, checkpoint_every=10),
        eval_items=96, goqa_items=None, splits=GSS_TEST_SPLITS),
    "default": Budget(
        "default", "the GSS subgroup study: one epoch of LoRA on the train split (186 steps of "
        "8), checkpoint chosen on the whole valid split (208 items) at steps 0, 93 and 186, "
        "every test item scored (about 25 min on 2 CPU cores, estimated)",
        TrainConfig(**_LORA_PAPER, learning_rate=2e-4, epochs=1.0, eval_every=93, eval_items=None),
        eval_items=None, goqa_items=None, splits=GSS_TEST_SPLITS),
    "full": Budget(
        "full", "the GSS subgroup study: 3 epochs of LoRA, checkpoint on the whole valid split "
        "every 93 steps, every item of every split (valid too) scored",
        TrainConfig(**_LORA_PAPER, learning_rate=2e-4, epochs=3.0, eval_every=93, eval_items=None),
        eval_items=None, goqa_items=None, splits=GSS_EVAL_SPLITS),
}

STUDY_BUDGETS = {"wvs": BUDGETS, "gss": GSS_BUDGETS}
"""The budgets of each study by name."""


def with_method(budget: Budget, method: str | None) -> Budget:
    """The budget with its fine-tuning method replaced (see :data:`METHODS`; None keeps the
    budget's own); the name says so when it changes."""
    if method is None:
        return budget
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}",
                        file="--method")
    settings = _training_part(method)
    prompt = METHODS[method].get("prompt", budget.prompt)
    if prompt == budget.prompt and all(getattr(budget.train, key) == value
                                       for key, value in settings.items()):
        return budget
    return replace(budget, name=f"{budget.name}-{method}",
                   description=f"{budget.description}; fine-tuned with the {method} method",
                   train=replace(budget.train, **settings), prompt=prompt)
