"""How much k observed populations of a new question (or k observed questions of a new
country, --new-countries) buy (issue 19, a first measurement).

For each question of a split whose questions training lacks (valid: C1xQ2; test_1: C1xQ3),
k of its countries are drawn (seeded) as observed; every other country of the question is
predicted from the training data plus those observations, and scored with 1-jsd beside
`uniform`, `region-mean` (training only), the plain mean of the k observed countries and
`country-mean-loo` (reference: all the other countries' answers). Differences carry a 95%
paired bootstrap interval resampling questions. Nothing here trains a model.

    python bench/observed_k.py --data-dir ../shared/data --split valid --k 1 3 10
    python bench/observed_k.py --data-dir ../shared/data --new-countries 6 --k 3 10
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surveytune.backends.precision import machine_summary  # noqa: E402
from surveytune.data.splits import carve_populations  # noqa: E402
from surveytune.methods.baselines import country_mean_loo, region_mean, uniform  # noqa: E402
from surveytune.methods.metrics import metrics_table  # noqa: E402
from surveytune.methods.observed import SimilarPopulations  # noqa: E402
from surveytune.methods.stats import compare_to  # noqa: E402
from surveytune.studies.wvs import study_splits  # noqa: E402


def observed_split(items, k: int, seed: int):
    """(observed, predicted) items: k seeded countries of each question observed."""
    by_question: dict = {}
    for item in items:
        by_question.setdefault((item.survey, item.question_id), []).append(item)
    rng = random.Random(seed)
    observed, predicted = [], []
    for key in sorted(by_question):
        group = sorted(by_question[key], key=lambda i: i.population)
        if len(group) <= k:
            continue
        chosen = set(rng.sample(range(len(group)), k))
        observed += [group[i] for i in chosen]
        predicted += [item for i, item in enumerate(group) if i not in chosen]
    return observed, predicted


def observed_questions(items, k: int, seed: int):
    """(observed, predicted) items: k seeded questions of each country observed."""
    by_country: dict = {}
    for item in items:
        by_country.setdefault(item.population, []).append(item)
    rng = random.Random(seed)
    observed, predicted = [], []
    for country in sorted(by_country):
        group = sorted(by_country[country], key=lambda i: (i.survey, i.question_id))
        chosen = set(rng.sample(range(len(group)), min(k, len(group) - 1)))
        observed += [group[i] for i in chosen]
        predicted += [item for i, item in enumerate(group) if i not in chosen]
    return observed, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--split", default="valid", choices=("valid", "test_1"))
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-countries", type=int, default=0,
                        help="Instead: hold out this many training countries (seeded) and "
                             "observe k of each one's questions (a new country).")
    args = parser.parse_args()
    print(machine_summary())
    splits = study_splits(args.data_dir, unseen_survey=False)
    train, items = splits["train"], splits[args.split]
    if args.new_countries:
        train, items = carve_populations(train, args.new_countries, seed=args.seed)
        args.split = f"{args.new_countries} held-out training countries"
    for k in args.k:
        observed, predicted = (observed_questions(items, k, args.seed) if args.new_countries
                               else observed_split(items, k, args.seed))
        table = SimilarPopulations.fit([*train, *observed], seed=args.seed)
        methods = {"similar-populations": table.predict(predicted)}
        if not args.new_countries:  # the same question's k observed answers, unweighted
            methods["observed-mean"] = _plain_mean(observed, predicted)
        methods.update({"region-mean": region_mean(train, predicted),
                        "uniform": uniform(predicted)})
        if not args.new_countries:  # every other country's answer: a reference
            methods["country-mean-loo"] = _loo(items, predicted)
        scores = {name: list(metrics_table(predicted, dists)["1-jsd"])
                  for name, dists in methods.items()}
        found = compare_to(predicted, scores, "similar-populations",
                           [m for m in methods if m != "similar-populations"])
        questions = len({(i.survey, i.question_id) for i in predicted})
        what = "questions per country" if args.new_countries else "countries per question"
        print(f"{args.split}, k={k} observed {what}: {len(predicted)} items "
              f"of {questions} questions predicted; temperature {table.temperature:g}")
        for name, values in scores.items():
            line = f"  {name:20s} 1-jsd {np.mean(values):.4f}"
            if name in found:
                line += f"   similar-populations minus it: {found[name]}"
            print(line)


def _plain_mean(observed, predicted):
    """The unweighted mean of the observed countries' answers to each question."""
    by_question: dict = {}
    for item in observed:
        by_question.setdefault((item.survey, item.question_id), []).append(item.distribution)
    return [np.mean(by_question[(i.survey, i.question_id)], axis=0) for i in predicted]


def _loo(items, predicted):
    """country-mean-loo of the whole split, for the predicted items (reference)."""
    by_id = dict(zip((i.id for i in items), country_mean_loo(items)))
    return [by_id[i.id] for i in predicted]


if __name__ == "__main__":
    main()
