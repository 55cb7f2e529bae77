"""Training throughput: LoRA steps with the shared prompt start run once per batch, against
running every row in full, side by side.

Same model, same batches of the train split (the study's order), same LoRA setup as the
default budget (r=16, all linear layers, LoRA dropout 0.05, bf16 autocast), one run; the two paths
alternate step by step so that machine noise hits both alike. Each step is forward +
backward + AdamW. That both paths compute the same loss and gradients is a float32 unit test
(tests/test_training.py); in bf16 they differ by rounding, printed here. The last line is
``speedup: X.XX``.

    python bench/training_throughput.py [--steps 12] [--dropout 0.05] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from surveytune.scoring import encode
from surveytune.simulator import Simulator
from surveytune.study import BUDGETS, METHODS, study_splits
from surveytune.training import Batchable, batch_loss, epoch_order, wrap_for_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per path")
    parser.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    config = replace(BUDGETS["default"].train, lora_dropout=args.dropout, **METHODS["paper"])
    items = study_splits(args.data_dir, unseen_survey=False)["train"]
    sim = Simulator.load(args.model)
    token_ids = encode(sim.tokenizer, sim.prompts(items), chat=sim.chat)
    order = epoch_order([len(t) for t in token_ids], config.batch_size, seed=0, epoch=0)
    batches = [order[i:i + config.batch_size]
               for i in range(0, args.steps * config.batch_size, config.batch_size)]
    data = Batchable(token_ids, [i.distribution for i in items])
    model = wrap_for_training(sim.model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-9)
    letters = torch.tensor(sim.letter_ids)
    pad = sim.tokenizer.pad_token_id
    mean_len = np.mean([len(token_ids[i]) for b in batches for i in b])
    modules = "/".join(config.target_modules)
    print(f"model {args.model}, {len(batches)} train batches of {config.batch_size}, mean "
          f"prompt {mean_len:.0f} tokens, LoRA r={config.lora_r} {modules}, "
          f"dropout {args.dropout}, bf16 autocast")

    def step(idx, share_prefix: bool) -> tuple[float, float]:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = batch_loss(model, data, idx, letters, pad, "kl", share_prefix=share_prefix)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, loss.item()

    step(batches[0], True)  # warm-up (allocations, kernels)
    times = {True: [], False: []}
    first = {}
    for idx in batches:
        for shared in (True, False):
            seconds, loss = step(idx, shared)
            times[shared].append(seconds)
            first.setdefault(shared, loss)
    shared_s, plain_s = np.mean(times[True]), np.mean(times[False])
    print(f"every row in full:      {plain_s:6.2f} s/step")
    print(f"shared start once:      {shared_s:6.2f} s/step   first loss {first[True]:.4f} vs "
          f"{first[False]:.4f} (bf16 rounding{' and dropout' if args.dropout else ''})")
    print(f"speedup: {plain_s / shared_s:.2f}")


if __name__ == "__main__":
    main()
