"""Scoring throughput, side by side in one run: the paper code's path, today's efficient path
and the question-first template with each question's part computed once.

Same model, the same valid items (whole questions, seeded; every valid country of each), one
run (the machine is noisy, so only ratios mean much):
  - paper-style: the paper's template, the paper code's way: prompts right-padded to 256
    tokens, full-vocabulary logits at every position, batch 8, float32;
  - efficient (paper template): length-sorted batches, left padding, last position only,
    the common start (chat header, "How would someone from") computed once, float32;
  - question-first shared: the question-first template, each question with its options
    computed once and its key/value cache reused for all its populations, float32;
  - predict of one question x 50 countries with the efficient and the question-first path.
Each path's distributions are checked against the same template without sharing (< 1e-5).
The last line is ``speedup: X.XX`` (question-first shared vs the paper-style path).

    python bench/scoring_throughput.py [--questions 4] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from surveytune.backends.precision import machine_summary
from surveytune.backends.scoring import encode, reference_score_token_ids, score_token_ids
from surveytune.data.items import make_item
from surveytune.data.splits import sample_by_question
from surveytune.simulator import Simulator
from surveytune.studies.wvs import study_splits


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def max_diff(a, b) -> float:
    return max(float(np.abs(x.distribution - y.distribution).max()) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="valid items (whole questions)")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine_summary()}")

    splits = study_splits(args.data_dir, unseen_survey=False)
    valid = splits["valid"]
    items = [valid[i] for i in sample_by_question(valid, args.items, seed=0)]
    paper = Simulator.load(args.model)
    first = Simulator(paper.backend, chat=paper.chat, prompt="question-first")
    pad = paper.tokenizer.pad_token_id
    n_options = [i.n_options for i in items]

    def ids(sim, batch):
        return encode(sim.tokenizer, sim.prompts(batch), chat=sim.chat)

    def score(token_ids, counts, **kwargs):
        return score_token_ids(paper.model, token_ids, counts, paper.letter_ids, pad,
                               batch_size=8, progress=False, **kwargs)

    paper_ids, first_ids = ids(paper, items), ids(first, items)
    print(f"model {args.model}, {len(items)} valid items of "
          f"{len({i.question_id for i in items})} questions, mean prompt "
          f"{np.mean([len(t) for t in paper_ids]):.0f} tokens (paper) / "
          f"{np.mean([len(t) for t in first_ids]):.0f} (question-first), chat={paper.chat}")

    naive, t_naive = timed(lambda: reference_score_token_ids(
        paper.model, paper_ids, n_options, paper.letter_ids, pad, batch_size=8, pad_to=256))
    fast, t_fast = timed(lambda: score(paper_ids, n_options))
    shared, t_shared = timed(lambda: score(first_ids, n_options))
    check = slice(0, 40)
    unshared = score(first_ids[check], n_options[check], share_prefix=False)
    for name, diff in (("efficient vs paper-style", max_diff(fast, naive)),
                       ("question-first shared vs unshared", max_diff(shared[check], unshared))):
        if diff > 1e-5:
            raise SystemExit(f"{name}: distributions differ by {diff:.2e} (> 1e-5)")
    for name, seconds in (("paper-style (paper template, padded to 256)", t_naive),
                          ("efficient (paper template, common start once)", t_fast),
                          ("question-first shared (each question once)", t_shared)):
        print(f"{name:48s} {seconds:7.1f} s  {len(items) / seconds:6.2f} items/s  "
              f"{t_naive / seconds:5.2f}x paper-style")

    question = items[0]
    countries = sorted({i.population for i in splits["train"] + valid})[:50]
    asked = [make_item(survey="user", question_id="q", question=question.question,
                       options=list(question.options),
                       distribution=[1 / question.n_options] * question.n_options,
                       population=c) for c in countries]
    counts = [question.n_options] * len(asked)
    _, t_one_fast = timed(lambda: score(ids(paper, asked), counts))
    _, t_one_shared = timed(lambda: score(ids(first, asked), counts))
    print(f"predict 1 question x {len(asked)} countries: efficient {t_one_fast:.2f} s, "
          f"question-first shared {t_one_shared:.2f} s, "
          f"{t_one_fast / t_one_shared:.2f}x")
    print(f"speedup: {t_naive / t_shared:.2f}")


if __name__ == "__main__":
    main()
