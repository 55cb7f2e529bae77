"""The report's charts, as base64 PNG data URIs (matplotlib, no display needed).

Per-item charts read the run folder's prediction records
(:func:`surveytune.data.records.read_method_predictions`) as pandas frames.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from surveytune.data.records import RunResults, TrainingRecord, read_method_predictions
from surveytune.data.splits import split_sort_key
from surveytune.methods.baselines import FINE_TUNED, MODEL_METHODS, ZERO_SHOT
from surveytune.methods.metrics import item_metrics
from surveytune.report.sections import diversity, diversity_sources

SAMPLE_ITEM_SPLITS = ("test_2", "test_5")
"""Unseen-country splits the sample-item charts draw from first."""
N_SAMPLE_ITEMS = 6

_COLOURS = {"human": "#333333", ZERO_SHOT: "#e07b39", FINE_TUNED: "#3b75af",
            "uniform": "#9aa3ad"}


def _colour(name: str, index: int) -> str:
    """The fixed colour of a method, else one of matplotlib's default cycle."""
    return _COLOURS.get(name, f"C{index % 10}")


def load_predictions(run_dir: str | os.PathLike, method: str) -> pd.DataFrame:
    """All ``predictions/{method}/*.jsonl`` records of a run as one frame (empty if none):
    the records' on-disk columns plus ``method``."""
    frame = pd.DataFrame([r.to_dict() for r in read_method_predictions(run_dir, method)])
    if not frame.empty:
        frame["method"] = method
    return frame


def _png(figure: Any) -> str:
    """A matplotlib Figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight",
                   metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matplotlib.rcParams["text.parse_math"] = False  # labels quote survey text: "$" is literal
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _short(text: Any, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _stable_order(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()


def sample_items(predictions: dict[str, pd.DataFrame], count: int = N_SAMPLE_ITEMS
                 ) -> list[tuple[str, str]]:
    """A deterministic spread of (split, id) keys: unseen-country splits first, one item per
    country and question where possible, preferring items every method predicted; never
    ``valid_zh`` (Chinese text)."""
    frames = [f for f in predictions.values() if not f.empty]
    if not frames:
        return []
    keys = [set(zip(f["split"], f["id"])) for f in frames]
    both = set.intersection(*keys)
    base = frames[0].drop_duplicates(["split", "id"])
    # Chinese prompts (valid_zh) have their own table: the chart font has no CJK glyphs.
    base = base[base["split"] != "valid_zh"]
    base = base.assign(_both=[(s, i) in both for s, i in zip(base["split"], base["id"])],
                       _pref=[s in SAMPLE_ITEM_SPLITS for s in base["split"]],
                       _order=[_stable_order(f"{s}/{i}") for s, i in
                               zip(base["split"], base["id"])])
    base = base.sort_values(["_both", "_pref", "_order"], ascending=[False, False, True])
    chosen: list[tuple[str, str]] = []
    used_pop: set[str] = set()
    used_q: set[str] = set()
    for strict in (2, 1, 0):  # distinct country and question, then country, then anything
        for row in base.itertuples(index=False):
            key = (row.split, row.id)
            if len(chosen) >= count:
                break
            if key in chosen or row.id in {i for _, i in chosen}:
                continue  # Nigeria and Morocco items are in two splits under one id
            if strict >= 1 and str(row.population) in used_pop:
                continue
            if strict >= 2 and str(row.question_id) in used_q:
                continue
            chosen.append(key)
            used_pop.add(str(row.population))
            used_q.add(str(row.question_id))
    return chosen


def chart_sample_items(predictions: dict[str, pd.DataFrame]) -> str | None:
    keys = sample_items(predictions)
    if not keys:
        return None
    methods = [m for m in MODEL_METHODS if not predictions[m].empty]
    indexed = {m: predictions[m].drop_duplicates(["split", "id"]).set_index(["split", "id"])
               for m in methods}
    cols = 3 if len(keys) > 2 else len(keys)
    rows = math.ceil(len(keys) / cols)
    figure = _figure(5.0 * cols, 4.3 * rows)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        first = next(indexed[m].loc[key] for m in methods if key in indexed[m].index)
        human = list(first["human"])
        options = first["options"] if isinstance(first["options"], list) else []
        labels = [_short(options[i], 14) if i < len(options) else chr(65 + i)
                  for i in range(len(human))]
        series = [("human", human)]
        series += [(m, list(indexed[m].loc[key]["predicted"])) for m in methods
                   if key in indexed[m].index]
        width = 0.8 / len(series)
        for j, (name, values) in enumerate(series):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(values))]
            ax.bar(xs, values, width, label=name, color=_COLOURS[name])
        ax.set_xticks(range(len(human)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("share")
        title = (f"{first['population']} · {first['question_id']} ({key[0]})\n"
                 f"{_short(first['question'], 60)}")
        ax.set_title(title, fontsize=8.5)
        ax.tick_params(axis="y", labelsize=7)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def matched(predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Items both models predicted, with both scores (``1-jsd_zs``, ``1-jsd_ft``)."""
    zs = predictions[ZERO_SHOT][["split", "id", "population", "1-jsd"]]
    ft = predictions[FINE_TUNED][["split", "id", "1-jsd"]]
    return zs.merge(ft, on=["split", "id"], suffixes=("_zs", "_ft"))


def chart_scatter(predictions: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """(data URI, caption) of per-item zero-shot vs fine-tuned 1-jsd."""
    both = matched(predictions)
    figure = _figure(6.5, 6.0)
    ax = figure.subplots()
    from matplotlib import colormaps

    splits = sorted(both["split"].unique(), key=split_sort_key)
    cmap = colormaps["tab10"]
    for index, split in enumerate(splits):
        part = both[both["split"] == split]
        ax.scatter(part["1-jsd_zs"], part["1-jsd_ft"], s=9, alpha=0.6, color=cmap(index % 10),
                   label=f"{split} ({len(part)})")
    low = float(min(both["1-jsd_zs"].min(), both["1-jsd_ft"].min(), 0.5))
    ax.plot([low, 1], [low, 1], color="#888888", linewidth=1, linestyle="--")
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1)
    ax.set_xlabel("zero-shot 1-jsd")
    ax.set_ylabel("fine-tuned 1-jsd")
    ax.set_title("Per item: fine-tuned vs zero-shot (above the line = fine-tuning helped)",
                 fontsize=9)
    ax.legend(fontsize=7, markerscale=1.5)
    figure.tight_layout()
    better = int((both["1-jsd_ft"] > both["1-jsd_zs"]).sum())
    caption = (f"{len(both)} items scored by both (matched by split and id); fine-tuned is "
               f"better on {better} of them.")
    return _png(figure), caption


def uniform_score(human: Sequence[float]) -> float:
    """1-jsd of the uniform prediction for one human distribution: the ``uniform`` baseline
    per item, whose per-item predictions the run folder does not keep."""
    return item_metrics(human, [1.0 / len(human)] * len(human))["1-jsd"]


def chart_per_country(predictions: dict[str, pd.DataFrame]) -> tuple[str, str] | None:
    """Mean 1-jsd per population on the test splits, for each model and uniform."""
    methods = [m for m in MODEL_METHODS if not predictions[m].empty]
    frames = {m: predictions[m][predictions[m]["split"].astype(str).str.startswith("test")]
              for m in methods}
    frames = {m: f for m, f in frames.items() if not f.empty}
    if not frames:
        return None
    means = pd.DataFrame({m: f.groupby("population")["1-jsd"].mean()
                          for m, f in frames.items()})
    base = pd.concat(frames.values()).drop_duplicates(["split", "id"])
    means["uniform"] = base.assign(u=[uniform_score(h) for h in base["human"]]
                                   ).groupby("population")["u"].mean()
    order_by = FINE_TUNED if FINE_TUNED in means else methods[0]
    means = means.sort_values(order_by)
    height = max(3.0, 0.19 * len(means) + 1.2)
    figure = _figure(8.0, height)
    ax = figure.subplots()
    series = [m for m in MODEL_METHODS if m in means]
    bar = 0.8 / len(series)
    ys = list(range(len(means)))
    for j, method in enumerate(series):
        ax.barh([y + (j - (len(series) - 1) / 2) * bar for y in ys], means[method], bar,
                color=_COLOURS[method], label=method)
    ax.scatter(means["uniform"], ys, marker="|", s=60, color="#000000", label="uniform",
               zorder=3)
    ax.set_yticks(ys)
    ax.set_yticklabels([_short(p, 24) for p in means.index], fontsize=7)
    lo = float(means.min().min())
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    ax.set_xlabel("mean 1-jsd over the population's test items (higher is better)")
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    caption = (f"{len(means)} populations, sorted by {order_by} 1-jsd; test splits only. "
               "`uniform` is computed from the human distributions in the prediction files. "
               "`country-mean` is not shown: its per-item predictions are not in the run "
               "folder.")
    return _png(figure), caption


def chart_diversity(run: RunResults) -> str | None:
    data = diversity(run)
    if not data:
        return None
    splits = sorted(data, key=split_sort_key)
    sources = [s for s in diversity_sources() if any(s in data[sp] for sp in splits)]
    figure = _figure(max(7.0, 0.9 * len(splits) + 3), 6.4)
    axes = figure.subplots(2, 1)
    measures = (("between_population_1-jsd", "between-population 1-jsd\n(higher = more alike)"),
                ("mean_normalised_entropy", "mean normalised entropy\n(higher = flatter)"))
    width = 0.8 / len(sources)
    for ax, (key, label) in zip(axes, measures):
        for j, source in enumerate(sources):
            values = [data[sp].get(source, {}).get(key) for sp in splits]
            xs = [i + (j - (len(sources) - 1) / 2) * width for i in range(len(splits))]
            ax.bar(xs, [math.nan if v is None else v for v in values], width, label=source,
                   color=_colour(source, j))
        ax.set_xticks(range(len(splits)))
        ax.set_xticklabels(splits, fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7, ncol=len(sources))
    figure.tight_layout()
    return _png(figure)


def chart_training(training: TrainingRecord) -> str | None:
    history = training.history
    train_loss = training.train_loss
    if not history and not train_loss:
        return None
    figure = _figure(9.0, 3.8)
    left, right = figure.subplots(1, 2)
    best = training.best_step
    if train_loss:
        steps, losses = zip(*[(s, v) for s, v in train_loss])
        left.plot(steps, losses, color="#b8c4d6", linewidth=0.8, label="train loss (batch)")
    for ax, key, label, ylabel in ((left, "valid_loss", "valid loss", "KL loss"),
                                   (right, "valid_1-jsd", "valid 1-jsd",
                                    "valid 1-jsd (higher is better)")):
        points = [h for h in history if h.get(key) is not None]
        if points:
            ax.plot([h["step"] for h in points], [h[key] for h in points], marker="o",
                    markersize=3, color=_COLOURS[FINE_TUNED], label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
    if best is not None:
        for ax in (left, right):
            ax.axvline(best, color="#c0392b", linestyle="--", linewidth=1,
                       label=f"best step {best}")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


OBSERVED_LINES = ("fine-tuned, observed prior", "similar-populations", "observed-mean",
                  "region-mean", "country-mean-loo", "uniform")


def chart_observed_k(run: RunResults) -> str | None:
    """The k curve: mean 1-jsd against the number of observed countries (unseen questions)
    or questions (unseen countries), one panel per split (None without k rows)."""
    by_split: dict[str, list[dict[str, Any]]] = {}
    for row in run.observed_rows:
        by_split.setdefault(row["split"], []).append(row)
    if not by_split:
        return None
    figure = _figure(3.2 * len(by_split) + 1, 3.4)
    axes = figure.subplots(1, len(by_split), squeeze=False)[0]
    for ax, (split, rows) in zip(axes, by_split.items()):
        for index, method in enumerate(OBSERVED_LINES):
            points = sorted((r["k"], r["1-jsd"]) for r in rows if r["method"] == method)
            if points:
                ax.plot(*zip(*points), marker="o", label=method, color=_colour(method, index),
                        linestyle="--" if method == "country-mean-loo" else "-")
        unit = "countries" if rows[0]["observe"] == "populations" else "questions"
        ax.set_title(split, fontsize=9)
        ax.set_xlabel(f"observed {unit} (k)", fontsize=8)
        ax.set_xticks(sorted({r["k"] for r in rows}))
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("mean 1-jsd (higher is better)", fontsize=8)
    axes[-1].legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    return _png(figure)
