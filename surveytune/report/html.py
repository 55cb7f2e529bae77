"""report.html: a self-contained page (inline CSS, embedded PNG charts, no scripts, no
links out) with the report's sections and charts."""

from __future__ import annotations

from pathlib import Path

from surveytune.data.records import RunResults, read_run_training
from surveytune.methods.baselines import MODEL_METHODS
from surveytune.report.charts import (
    N_SAMPLE_ITEMS,
    SAMPLE_ITEM_SPLITS,
    chart_diversity,
    chart_observed_k,
    chart_per_country,
    chart_sample_items,
    chart_scatter,
    chart_training,
    load_predictions,
    matched,
)
from surveytune.report.sections import (
    DIVERSITY_SENTENCE,
    StudySections,
    budget_text,
    esc,
    methods,
    model_name,
    sections,
    subsample_sentence,
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:2em auto;padding:0 1.2em;color:#1d2330;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:2px solid #dde2ea;
 padding-bottom:.2em}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #d5dae3;padding:.3em .6em}th{background:#eef1f6;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.paper td{background:#faf6ea;color:#555}tr.ref td{background:#f4f6f9}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.summary dt{font-weight:600}dl.summary dd{margin:0}
p.note{color:#555;font-size:.92em}p.skip{color:#8a4b00;background:#fff5e6;padding:.5em .8em;
 border-left:4px solid #f0a040}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
"""



def _figure_html(uri: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(alt)}">{cap}</figure>'


def _skip_html(text: str) -> str:
    return f'<p class="skip">Chart skipped: {esc(text)}</p>'


def _inline_code(text: str) -> str:
    """HTML for a sentence with `code` spans."""
    parts = esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _charts_html(run: RunResults, run_dir: Path) -> list[str]:
    predictions = {m: load_predictions(run_dir, m) for m in MODEL_METHODS}
    have = {m: not predictions[m].empty for m in MODEL_METHODS}
    out = ["<h2>Charts</h2>"]

    out.append("<h3>Sample items: predicted vs human</h3>")
    if not any(have.values()):
        out.append(_skip_html("no zero-shot or fine-tuned predictions in predictions/ yet."))
    else:
        uri = chart_sample_items(predictions)
        missing = [m for m in MODEL_METHODS if not have[m]]
        caption = (f"{N_SAMPLE_ITEMS} items chosen deterministically, from the unseen-country "
                   f"splits ({', '.join(SAMPLE_ITEM_SPLITS)}) when they are present, one "
                   "country each.")
        if missing:
            caption += f" No {' or '.join(missing)} predictions yet, so not shown."
        out.append(_figure_html(uri, "predicted vs human answer shares", caption)
                   if uri else _skip_html("no items to show."))

    out.append("<h3>Per item: zero-shot vs fine-tuned 1-jsd</h3>")
    missing = [m for m in MODEL_METHODS if not have[m]]
    if missing:
        out.append(_skip_html(f"no {' or '.join(missing)} predictions yet "
                              f"(predictions/{missing[0]}/ is empty or missing)."))
    elif matched(predictions).empty:
        out.append(_skip_html("no item was predicted by both zero-shot and fine-tuned."))
    else:
        uri, caption = chart_scatter(predictions)
        out.append(_figure_html(uri, "per-item scatter", caption))

    out.append("<h3>Error per country</h3>")
    result = chart_per_country(predictions) if any(have.values()) else None
    if result is None:
        out.append(_skip_html("no model predictions on a test split yet."))
    else:
        uri, caption = result
        if missing:
            caption += f" No {' or '.join(missing)} predictions yet."
        out.append(_figure_html(uri, "mean 1-jsd per country", caption))

    out.append("<h3>Diversity: humans vs the model</h3>")
    uri = chart_diversity(run)
    out.append(_figure_html(uri, "diversity", DIVERSITY_SENTENCE) if uri else
               _skip_html("no diversity measures in results.json."))

    uri = chart_observed_k(run)
    if uri:
        out.append("<h3>What observations buy</h3>")
        out.append(_figure_html(uri, "1-jsd by the number of observed cells",
                                "Mean 1-jsd of the predicted items with k observed countries "
                                "per question or questions per country (dashed: the "
                                "country-mean-loo reference)."))

    out.append("<h3>Training curve</h3>")
    training = read_run_training(run_dir)
    if training is None:
        out.append(_skip_html("no train/training.json (this run did not fine-tune, or the "
                              "training has not finished)."))
    else:
        uri = chart_training(training)
        best = training.best_step
        caption = ("Valid loss and valid 1-jsd by step"
                   + (f"; the checkpoint kept is from step {best} (dashed line)."
                      if best is not None else "."))
        out.append(_figure_html(uri, "training curve", caption) if uri else
                   _skip_html("train/training.json has no history."))
    return out


def render_html(run: RunResults, run_dir: Path, study: StudySections = StudySections()) -> str:
    """The whole page."""
    title = f"surveytune report: {run_dir.name}"
    summary = [("model", model_name(run)), ("budget", budget_text(run.budget)),
               ("test rows", run.note or "(not recorded)"),
               ("evaluation", subsample_sentence(run)),
               ("methods", ", ".join(methods(run))),
               ("run folder", str(run_dir))]
    body = [f"<h1>{esc(title)}</h1>",
            "<p>How well the model simulates populations' survey answer distributions, "
            "beside the baselines and the paper's reported numbers.</p>",
            '<dl class="summary">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>"
                                             for k, v in summary) + "</dl>"]
    for heading, blocks in sections(run, study):
        body.append(f"<h2>{esc(heading)}</h2>")
        for kind, content in blocks:
            if kind == "table":
                body.append(content.html())
            elif kind == "legend":
                body.append("<ul>" + "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>"
                                             for k, v in content.items()) + "</ul>")
            elif kind == "list":
                body.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in content) + "</ul>")
            elif kind == "skip":
                body.append(f'<p class="skip">{esc(content)}</p>')
            else:
                css = ' class="note"' if kind == "note" else ""
                body.append(f"<p{css}>{_inline_code(content)}</p>")
    body += _charts_html(run, run_dir)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
