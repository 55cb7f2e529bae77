"""Evidence in the prompt (issue 19, item 3): does the language model use the observed
answers when they are written before the question, beyond what the observed prior says?

On valid (C1xQ2: questions training lacks), k countries of each question are drawn as
observed (the study's seeded draw, surveytune.studies.observed_rows); for a seeded question
sample of the other countries' items the zero-shot model is scored twice: with the question as
it is, and with the observed countries' shares written before it ("Known answers to this
question: in Spain (A) 40%, (B) 60%; ..."). Each distribution is then combined with the
observed prior (similar-populations) by a calibration fit on half the questions (seeded) and
scored on the other half, beside the prior alone, with 95% paired intervals resampling
questions. Only valid is read; nothing is chosen on a test split.

    python bench/evidence_prompt.py --data-dir ../shared/data --k 3 --items 300
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surveytune import Simulator  # noqa: E402
from surveytune.backends.precision import machine_summary  # noqa: E402
from surveytune.data.items import LETTERS  # noqa: E402
from surveytune.data.splits import sample_by_question  # noqa: E402
from surveytune.methods.calibration import fit_calibration  # noqa: E402
from surveytune.methods.metrics import metrics_table  # noqa: E402
from surveytune.methods.observed import ObservedPrior  # noqa: E402
from surveytune.methods.stats import compare_to  # noqa: E402
from surveytune.studies.budgets import RECIPES  # noqa: E402
from surveytune.studies.observed_rows import draw_observed  # noqa: E402
from surveytune.studies.wvs import study_splits  # noqa: E402


def evidence_text(observed, item) -> str:
    """The observed countries' shares of the item's question, in the options' letters."""
    cells = [o for o in observed if (o.survey, o.question_id) == (item.survey, item.question_id)]
    parts = []
    for cell in sorted(cells, key=lambda c: c.population):
        shares = ", ".join(f"({LETTERS[i]}) {round(100 * p)}%"
                           for i, p in enumerate(cell.distribution))
        parts.append(f"in {cell.population} {shares}")
    return "Known answers to this question: " + "; ".join(parts) + ". "


def _half(item) -> int:
    return random.Random(f"{item.survey}:{item.question_id}").randrange(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    print(machine_summary())
    splits = study_splits(args.data_dir, unseen_survey=False)
    valid = splits["valid"]
    observed, others = draw_observed(valid, "populations", args.k, seed="valid")
    rest = [i for i in valid if i.id in others]
    items = [rest[i] for i in sample_by_question(rest, args.items, seed=0)]
    prior = ObservedPrior.fit([*splits["train"], *observed])
    log_priors, groups = prior.log_priors(items), prior.groups(items)
    sim = Simulator.load(prompt=RECIPES["anchored"]["prompt"])
    raw = {}
    for name, asked in (("plain", items), ("evidence", [
            i.replace(question=evidence_text(observed, i) + i.question) for i in items])):
        started = time.monotonic()
        raw[name] = [p.distribution for p in sim.predict(asked, desc=name)]
        print(f"{name}: {len(items)} items scored in {time.monotonic() - started:.0f} s")
    fit = [n for n, i in enumerate(items) if _half(i) == 0]
    test = [n for n, i in enumerate(items) if _half(i) == 1]
    held = [items[n] for n in test]
    predictions = {"observed prior alone": [np.exp(log_priors[n]) / np.exp(log_priors[n]).sum()
                                            for n in test]}
    for name, dists in raw.items():
        calibration = fit_calibration([dists[n] for n in fit], [log_priors[n] for n in fit],
                                      [items[n].distribution for n in fit],
                                      [groups[n] for n in fit])
        print(f"{name}: calibration fit on {len(fit)} items: {calibration.to_dict()}")
        predictions[f"model {name}, raw"] = [dists[n] for n in test]
        predictions[f"model {name} + observed prior"] = calibration.apply(
            [dists[n] for n in test], [log_priors[n] for n in test], [groups[n] for n in test])
    scores = {name: list(metrics_table(held, p)["1-jsd"]) for name, p in predictions.items()}
    questions = len({(i.survey, i.question_id) for i in held})
    print(f"valid, k={args.k} observed countries per question; scored on {len(held)} items "
          f"of {questions} questions (the calibration's other half)")
    for name, values in scores.items():
        print(f"  {name:34s} 1-jsd {np.mean(values):.4f}")
    for method, versus in (("model evidence + observed prior", "observed prior alone"),
                           ("model evidence + observed prior", "model plain + observed prior"),
                           ("model evidence, raw", "model plain, raw")):
        print(f"  {method} minus {versus}: {compare_to(held, scores, method, [versus])[versus]}")


if __name__ == "__main__":
    main()
