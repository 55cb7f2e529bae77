"""Choose the budgets' prompt template on validation data (never a test split).

Trains the same LoRA model (the default budget's settings, anchored method, precision auto)
in several arms that differ in the prompt style and in how batches are formed, then scores
each arm's calibrated fine-tuned model on validation items that chose nothing: a seeded
question sample of valid outside the 200 validation items of training, and the held-out
training countries' items outside theirs. Differences between arms are paired by item with
a 95% bootstrap interval over questions (surveytune.methods.stats): that interval is the measured
noise of the comparison (question sampling; one training seed per arm, so seed noise is not
in it). Each arm's run folder resumes; results go to OUT/summary.json.

    python bench/choose_template.py --out runs/template-choice [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from surveytune.backends.precision import machine_summary
from surveytune.data.splits import carve_populations, sample_by_question
from surveytune.methods.metrics import metrics_table
from surveytune.methods.stats import paired_bootstrap
from surveytune.simulator import Simulator
from surveytune.studies.wvs import BUDGETS, study_splits
from surveytune.training.recipe import _subsample

ARMS = {  # name -> (prompt style, questions per batch); the first one run is the reference
    "paper, 1 question per batch": ("paper", 1),
    "question-first, 1 question per batch": ("question-first", 1),
    "question-first, 2 questions per batch": ("question-first", 2),
    "paper, random batches (today)": ("paper", 0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-items", type=int, default=100, help="validation items per set")
    parser.add_argument("--items", type=int, default=300, help="comparison items per set")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine_summary()}", flush=True)

    splits = study_splits(args.data_dir, unseen_survey=False)
    train, valid = splits["train"], splits["valid"]
    base = replace(BUDGETS["default"].train, max_steps=args.steps, eval_every=args.steps // 2,
                   learning_rate=5e-4, warmup_ratio=0.1, checkpoint_every=10,
                   eval_items=args.eval_items)
    # The items training validates on (and calibrates on) are left out of the comparison.
    used = {i.id for i in _subsample(valid, base.eval_items, base.seed)}
    rest_valid = [i for i in valid if i.id not in used]
    _, heldout = carve_populations(train, base.heldout_populations, seed=base.seed)
    used = {i.id for i in _subsample(heldout, base.eval_items, base.seed)}
    rest_heldout = [i for i in heldout if i.id not in used]
    compare = {name: [items[i] for i in sample_by_question(items, args.items, seed=11)]
               for name, items in (("valid", rest_valid), ("heldout", rest_heldout))}

    scores: dict[str, dict[str, list[float]]] = {}
    for arm in args.arms:
        style, per_batch = ARMS[arm]
        folder = args.out / arm.replace(", ", "_").replace(" ", "-")
        started = time.monotonic()
        sim = Simulator.load(prompt=style)
        result = sim.fit(train, valid, folder, replace(base, questions_per_batch=per_batch))
        trained = time.monotonic() - started
        scores[arm] = {}
        for name, items in compare.items():
            predictions = sim.predict(items, desc=f"{arm}: {name}")
            scores[arm][name] = metrics_table(
                items, [p.distribution for p in predictions])["1-jsd"].tolist()
        print(f"{arm}: best step {result.best_step}, trained in {trained / 60:.1f} min, "
              + ", ".join(f"{n} 1-jsd {np.mean(s):.4f}" for n, s in scores[arm].items()),
              flush=True)

    reference = args.arms[0]
    summary = {"machine": machine_summary(), "steps": args.steps, "arms": {}, "reference":
               reference, "items": {n: len(i) for n, i in compare.items()}}
    for arm in args.arms:
        summary["arms"][arm] = {name: {"1-jsd": float(np.mean(s))}
                                for name, s in scores[arm].items()}
        if arm == reference:
            continue
        for name, items in compare.items():
            interval = paired_bootstrap(scores[arm][name], scores[reference][name],
                                        [i.question_id for i in items])
            summary["arms"][arm][name]["minus_reference"] = interval.to_dict()
            print(f"{arm} - {reference} on {name}: {interval}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
