"""The report's section on what observations buy: the k rows of
:mod:`surveytune.studies.observed_rows` as a table, their paired comparisons, and when a user
should give observations."""

from __future__ import annotations

from typing import Any

from surveytune.data.records import RunResults
from surveytune.report.sections import VERDICT_WORDS, Section, Tab, fmt, interval_text

METHOD_ORDER = ("fine-tuned, observed prior", "similar-populations", "observed-mean",
                "region-mean", "country-mean-loo", "uniform")

UNIT_WORDS = {"populations": ("country", "countries"), "questions": ("question", "questions")}

OBSERVED_SENTENCE = (
    "Each split scored again as a user with a few real answers would use the tool: for "
    "unseen questions, k countries of each question drawn (seeded) as observed, as from a "
    "pilot; for unseen countries, k questions of each country, as a new country's first "
    "answers. The other scored items are predicted from the training rows plus those cells "
    "and scored beside the baselines on the same items. `similar-populations` weights the "
    "observed answers by how alike each country answered the training questions "
    "(surveytune.methods.observed); `observed-mean` is their plain mean; `fine-tuned, "
    "observed prior` is the fine-tuned model anchored on `similar-populations` with its "
    "calibration (what `predict --observed` and `evaluate --observed` give); "
    "`country-mean-loo` (every other country of the split) is a reference, not a rival. "
    "k = 0 is the study's own rows above.")


def _methods(run: RunResults) -> list[str]:
    present = {r["method"] for r in run.observed_rows}
    return [m for m in METHOD_ORDER if m in present]


def observed_table(run: RunResults) -> Tab:
    """One row per split and k: n (questions) and each method's mean 1-jsd."""
    methods = _methods(run)
    tab = Tab(["split", "observed per unit", "n (questions)", *methods],
              [False, False, True, *([True] * len(methods))])
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for row in run.observed_rows:
        entry = by_key.setdefault((row["split"], row["k"]), {"row": row})
        entry[row["method"]] = row["1-jsd"]
    for (split, k), entry in by_key.items():
        row = entry["row"]
        unit = "countries of each question" if row["observe"] == "populations" else (
            "questions of each country")
        tab.add([split, f"k={k} {unit}", f"{row['n']} ({row['questions']})",
                 *(fmt(entry.get(m)) for m in methods)])
    return tab


def observed_comparisons_table(run: RunResults) -> Tab:
    tab = Tab(["split", "k", "n (questions)", "method", "vs", "difference [95% interval]",
               "method is"], [False, True, True, False, False, True, False])
    for row in run.observed_comparisons:
        tab.add([row["split"], row["k"], f"{row['n']} ({row['questions']})", row["method"],
                 row["versus"], interval_text(row), VERDICT_WORDS[row["verdict"]]])
    return tab


def advice(run: RunResults) -> list[str]:
    """When a user should give observations, from this run's numbers: the gain of
    ``similar-populations`` over what the training data alone gives, per split and k."""
    lines = []
    for row in run.observed_comparisons:
        if row["method"] != "similar-populations" or row["versus"] != "region-mean":
            continue
        one = row["k"] == 1
        unit = UNIT_WORDS[row["observe"]][0 if one else 1]
        lines.append(f"{row['split']}: {row['k']} observed {unit} {'buys' if one else 'buy'} "
                     f"{interval_text(row)} 1-jsd over region-mean "
                     f"({VERDICT_WORDS[row['verdict']]} it; n={row['n']} items of "
                     f"{row['questions']} questions)")
    return lines


def observed_sections(run: RunResults) -> list[Section]:
    """The section, or nothing when the run has no k rows."""
    if not run.observed_rows:
        return []
    return [("What observations buy: k observed countries or questions", [
        ("p", OBSERVED_SENTENCE), ("table", observed_table(run)),
        ("p", "Gain of `similar-populations` over `region-mean` (training data alone), "
              "95% paired interval over questions:"),
        ("list", advice(run)),
        ("p", "Every paired comparison:"), ("table", observed_comparisons_table(run))])]
