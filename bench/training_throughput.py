"""Training throughput, side by side in one run: today's LoRA step (the paper's template,
random batches, the common prompt start once) against the question-first template with
batches of about 2 questions whose question parts are computed once.

Same model, same LoRA setup as the default budget (r=16, all linear layers, LoRA dropout
0.05, precision as ``auto`` chooses it on this machine), the same training items in each
path's own batches (the study's order for each), one run; the paths alternate step by
step so that machine noise hits both alike. Each step is forward + backward + AdamW. That
the shared path computes the same loss and gradients as the full one is a unit test
(tests/test_question_first.py). The last line is ``speedup: X.XX`` (items/s, question-first
shared vs today's).

    python bench/training_throughput.py [--steps 6] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from surveytune.backends.precision import choose_precision, machine_summary
from surveytune.backends.scoring import encode
from surveytune.simulator import Simulator
from surveytune.studies.wvs import BUDGETS, study_splits
from surveytune.training.batches import epoch_order
from surveytune.training.memory import frozen_weights_cast
from surveytune.training.recipe import Batchable, batch_loss, wrap_for_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per path")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions-per-batch", type=int, nargs="+",
                        default=[BUDGETS["default"].train.questions_per_batch or 2],
                        help="question-first paths to measure; the first gives the speedup")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine_summary()}")

    config = replace(BUDGETS["default"].train, precision="auto")
    items = study_splits(args.data_dir, unseen_survey=False)["train"]
    today = Simulator.load(args.model)
    first = Simulator(today.backend, chat=today.chat, prompt="question-first")
    groups = [f"{i.survey}/{i.question_id}" for i in items]
    paths = {}
    variants = [("today", today, 0)] + [(f"question-first, {n} q/batch", first, n)
                                        for n in args.questions_per_batch]
    for name, sim, per_batch in variants:
        token_ids = encode(sim.tokenizer, sim.prompts(items), chat=sim.chat)
        order = epoch_order([len(t) for t in token_ids], config.batch_size, seed=0, epoch=0,
                            groups=groups, questions_per_batch=per_batch)
        batches = [order[i:i + config.batch_size]
                   for i in range(0, (args.steps + 1) * config.batch_size, config.batch_size)]
        paths[name] = (Batchable(token_ids, [i.distribution for i in items]), batches)
    model = wrap_for_training(today.model, config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-9)
    letters = torch.tensor(today.letter_ids)
    pad = today.tokenizer.pad_token_id
    precision = choose_precision("auto", "cpu")
    bf16 = precision.used == "bf16-autocast"
    print(f"model {args.model}, {args.steps} steps of {config.batch_size} per path, LoRA "
          f"r={config.lora_r} {'/'.join(config.target_modules)}, dropout {config.lora_dropout}, "
          f"{precision.describe()}")

    def step(data, idx) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), \
                frozen_weights_cast(model, torch.bfloat16 if bf16 else None):
            loss = batch_loss(model, data, idx, letters, pad, "kl")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for data, batches in paths.values():
        step(data, batches[0])  # warm-up (allocations, kernels)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for number in range(1, args.steps + 1):
        for name, (data, batches) in paths.items():
            times[name].append(step(data, batches[number]))
    rates = {}
    for name, (data, batches) in paths.items():
        seconds = float(np.mean(times[name]))
        rates[name] = config.batch_size / seconds
        questions = np.mean([len({groups[i] for i in b}) for b in batches[1:]])
        tokens = np.mean([len(data.token_ids[i]) for b in batches[1:] for i in b])
        print(f"{name:28s} {seconds:6.2f} s/step  {rates[name]:5.2f} items/s  "
              f"({questions:.1f} questions per batch, mean prompt {tokens:.0f} tokens)")
    print(f"speedup: {rates[variants[1][0]] / rates['today']:.2f}")


if __name__ == "__main__":
    main()
