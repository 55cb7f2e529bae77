"""Scoring throughput: the efficient first-token path against a naive reference, side by side.

Same model, same 200 valid items, one run (the machine is noisy, so only ratios mean much):
  - naive: the paper code's way, prompts right-padded to 256 tokens, full-vocabulary logits
    at every position, batch 8, float32;
  - efficient: length-sorted batches, left padding, last position only, float32 (default);
  - efficient in bfloat16: faster, but moves probabilities; we report by how much.
Both float32 paths must agree to 1e-5. The last line is ``speedup: X.XX`` (float32).

    python bench/scoring_throughput.py [--items 200] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from surveytune.metrics import metrics_table
from surveytune.scoring import encode, reference_score_token_ids, score_token_ids
from surveytune.simulator import Simulator
from surveytune.study import study_splits


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    items = study_splits(args.data_dir, unseen_survey=False)["valid"]
    items = [items[i] for i in np.random.default_rng(0).choice(len(items), args.items,
                                                               replace=False)]
    sim = Simulator.load(args.model)
    token_ids = encode(sim.tokenizer, sim.prompts(items), chat=sim.chat)
    n_options = [i.n_options for i in items]
    pad = sim.tokenizer.pad_token_id
    print(f"model {args.model}, {len(items)} valid items, mean prompt "
          f"{np.mean([len(t) for t in token_ids]):.0f} tokens, chat={sim.chat}")

    naive, t_naive = timed(lambda: reference_score_token_ids(
        sim.model, token_ids, n_options, sim.letter_ids, pad, batch_size=8, pad_to=256))
    fast, t_fast = timed(lambda: score_token_ids(
        sim.model, token_ids, n_options, sim.letter_ids, pad, batch_size=8, progress=False))
    diff = max(float(np.abs(a.distribution - b.distribution).max()) for a, b in zip(fast, naive))
    print(f"naive float32:     {t_naive:7.1f} s  {len(items) / t_naive:5.2f} items/s")
    print(f"efficient float32: {t_fast:7.1f} s  {len(items) / t_fast:5.2f} items/s  "
          f"max |diff| vs naive {diff:.2e}")
    if diff > 1e-5:
        raise SystemExit(f"efficient and naive scoring disagree by {diff:.2e} (> 1e-5)")

    sim.model.to(dtype=__import__("torch").bfloat16)
    bf16, t_bf16 = timed(lambda: score_token_ids(
        sim.model, token_ids, n_options, sim.letter_ids, pad, batch_size=8, progress=False))
    shift = max(float(np.abs(a.distribution - b.distribution).max()) for a, b in zip(bf16, fast))

    def mean_score(preds):
        return float(metrics_table(items, [p.distribution for p in preds])["1-jsd"].mean())

    print(f"efficient bfloat16:{t_bf16:7.1f} s  {len(items) / t_bf16:5.2f} items/s  "
          f"speedup vs naive {t_naive / t_bf16:.2f}; max probability shift vs float32 "
          f"{shift:.3f}; mean 1-jsd {mean_score(bf16):.4f} vs float32 {mean_score(fast):.4f}")
    print(f"speedup: {t_naive / t_fast:.2f}")


if __name__ == "__main__":
    main()
