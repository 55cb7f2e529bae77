"""The goals a fine-tuned WVS simulator is held to, and whether a run meets each one.

A simulator of populations is worth using when it beats what the training data alone gives on
people it has not seen, and when it tells populations apart about as much as people differ.
Each goal is checked from a run's :class:`~surveytune.data.records.RunResults` (nothing is
hard-coded but the thresholds), and results.md lists every one as met, TIED or MISSED with its
numbers; beating a baseline counts only when the paired interval of the difference lies above 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from surveytune.data.records import RunResults
from surveytune.data.splits import UNSEEN_SURVEY
from surveytune.methods.baselines import FINE_TUNED
from surveytune.report.sections import interval_text

DIVERSITY_TOLERANCE = 0.05
"""How far the fine-tuned model's between-population 1-jsd may be from the humans'."""

ORDER_AGREEMENT = 0.80
"""The share of valid items whose top option must survive reversing the options."""


@dataclass(frozen=True)
class BeatGoal:
    """Fine-tuned ``1-jsd`` above each of ``baselines`` on ``split``, whose questions the
    training data holds (``seen``) or not (``unseen``: the calibration groups)."""

    split: str
    what: str
    baselines: tuple[str, ...]
    questions: str


BEAT_GOALS = (
    BeatGoal("test_2", "unseen countries", ("country-mean", "region-mean"), "seen"),
    BeatGoal("test_5", "unseen countries", ("country-mean", "region-mean"), "seen"),
    BeatGoal("test_1", "unseen questions", ("uniform", "population-style"), "unseen"),
    BeatGoal(UNSEEN_SURVEY, "unseen survey", ("uniform",), "unseen"),
)
DIVERSITY_SPLITS = ("test_2", "test_5")


@dataclass(frozen=True)
class ObservedGoal:
    """With ``k`` observed cells (:mod:`surveytune.studies.observed_rows`), the fine-tuned model
    on the observed prior above ``baseline`` on ``split`` (interval above 0) and, with
    ``floor``, its 1-jsd above it (issue 19's targets)."""

    split: str
    k: int
    what: str
    baseline: str
    floor: float | None = None


OBSERVED_METHOD = "fine-tuned, observed prior"
OBSERVED_GOALS = (
    ObservedGoal("test_1", 3, "unseen questions, 3 observed countries each", "observed-mean",
                 floor=0.80),
    ObservedGoal("test_2", 3, "unseen countries, 3 observed questions each", "region-mean"),
    ObservedGoal("test_5", 3, "unseen countries, 3 observed questions each", "region-mean"),
)
ORDER_PROBE_QUESTIONS = "unseen"  # the probe reverses valid items (C1×Q2)


def _prior_alone(run: RunResults, questions: str) -> str:
    """A warning when the calibration gave the model no weight for these questions: then the
    fine-tuned predictions are the prior's alone and say nothing about the language model."""
    if run.calibration.get("scales", {}).get(questions, 1.0) != 0:
        return ""
    return (f" (the prior alone: the calibration gave the model weight 0 for {questions} "
            "questions)")


def calibration_line(run: RunResults) -> str | None:
    """What the calibration chose on validation data, in words (None without one)."""
    scales = run.calibration.get("scales")
    if not scales:
        return None
    weights = run.calibration.get("prior_weights", {})
    parts = [f"{group} questions model scale {scale:g}"
             + (f", prior weight {weights[group]:g}" if group in weights else "")
             for group, scale in scales.items()]
    return ("calibration chosen on validation data: " + "; ".join(parts)
            + " (scale 1 with prior weight 1 is plain anchoring; scale 0 drops the model)")


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


GOAL_WORDS = {"met": "met", "tied": "TIED", "missed": "MISSED"}
"""A beat-the-baselines goal is met only when the interval of every difference lies above
0, TIED when one contains 0, MISSED when one lies below (surveytune.methods.stats)."""


def _beat_line(run: RunResults, goal: BeatGoal, tuned: float, refs: dict[str, float]) -> str:
    verdicts, parts, n = [], [], ""
    for baseline, value in refs.items():
        row = run.comparison(goal.split, FINE_TUNED, baseline)
        if row is None:  # a run made before the intervals: the means alone
            verdicts.append("met" if tuned > value else "missed")
            parts.append(f"{baseline} {value:.3f}")
            continue
        verdicts.append(row["verdict"])
        parts.append(f"{baseline} {value:.3f} (difference {interval_text(row)})")
        n = f", n={row['n']} items of {row['questions']} questions"
    verdict = "missed" if "missed" in verdicts else "tied" if "tied" in verdicts else "met"
    return (f"{GOAL_WORDS[verdict]}: {goal.split} ({goal.what}{n}) fine-tuned {tuned:.3f} "
            "vs " + ", ".join(parts) + _prior_alone(run, goal.questions))


def observed_goal_lines(run: RunResults) -> list[str]:
    """The goals with observed cells, where the run has their k rows."""
    lines = []
    for goal in OBSERVED_GOALS:
        row = next((c for c in run.observed_comparisons
                    if (c["split"], c["k"], c["method"], c["versus"])
                    == (goal.split, goal.k, OBSERVED_METHOD, goal.baseline)), None)
        score = next((r["1-jsd"] for r in run.observed_rows
                      if (r["split"], r["k"], r["method"]) == (goal.split, goal.k,
                                                               OBSERVED_METHOD)), None)
        if row is None or score is None:
            continue
        verdict = row["verdict"]
        floor = ""
        if goal.floor is not None:
            floor = f", goal above {goal.floor:.2f}"
            if score <= goal.floor and verdict != "missed":
                verdict = "missed"
        lines.append(f"{GOAL_WORDS[verdict]}: {goal.split} ({goal.what}, n={row['n']} items "
                     f"of {row['questions']} questions) {OBSERVED_METHOD} {score:.3f}{floor}; "
                     f"vs {goal.baseline} {interval_text(row)}")
    return lines


def goal_lines(run: RunResults, metric: str = "1-jsd") -> list[str]:
    """One line per goal the run can be checked against (a goal whose split or baseline
    was not scored is left out): met, TIED or MISSED, with the numbers and, for the goals of
    beating a baseline, the paired interval of each difference."""
    score = {(r.method, r.split): r.metrics.get(metric) for r in run.results}
    lines = []
    for goal in BEAT_GOALS:
        tuned = score.get((FINE_TUNED, goal.split))
        refs = {b: score[(b, goal.split)] for b in goal.baselines
                if score.get((b, goal.split)) is not None}
        if tuned is None or not refs:
            continue
        lines.append(_beat_line(run, goal, tuned, refs))
    lines += observed_goal_lines(run)
    diversity = {(d.method, d.split): d.between_population for d in run.diversity}
    for split in DIVERSITY_SPLITS:
        human, tuned = diversity.get(("human", split)), diversity.get((FINE_TUNED, split))
        if human is None or tuned is None:
            continue
        met = abs(tuned - human) <= DIVERSITY_TOLERANCE
        lines.append(f"{_verdict(met)}: {split} between-population 1-jsd of fine-tuned "
                     f"{tuned:.3f} within {DIVERSITY_TOLERANCE} of the humans' {human:.3f} "
                     f"(gap {tuned - human:+.3f})")
    for row in run.order_consistency:
        if row.method == FINE_TUNED:
            met = row.top_option_agreement >= ORDER_AGREEMENT
            lines.append(f"{_verdict(met)}: fine-tuned top option unchanged under option "
                         f"reversal on {row.top_option_agreement:.0%} of {row.n} {row.split} "
                         f"items (goal: at least {ORDER_AGREEMENT:.0%})"
                         + _prior_alone(run, ORDER_PROBE_QUESTIONS))
    chosen = calibration_line(run)
    if lines and chosen:
        lines.append(chosen)
    return lines
