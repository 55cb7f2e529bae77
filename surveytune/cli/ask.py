"""The commands a researcher runs on their own questionnaire: ``predict`` (questions without
answers, for populations) and ``evaluate`` (survey files with answers, beside the baselines
and their intervals). Both warn per question when the model does not know."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from surveytune.cli.options import (
    AdapterOpt,
    AllowUnknownOpt,
    BackendChoice,
    ChatOpt,
    ElicitOpt,
    JsonFlag,
    ModelOpt,
    OrderAverageOpt,
    ParseFailureOpt,
    PromptOpt,
    SamplesOpt,
    SeedOpt,
    TemplateOpt,
    check_out_file,
    check_prompts,
    elicitation_flags,
    load_simulator,
    load_template,
    with_backend_flags,
    write_json,
)
from surveytune.cli.options import check_flag as _flag
from surveytune.data.items import DataError

ShowPromptOpt = Annotated[bool, typer.Option(
    "--show-prompt", help="Print the exact prompt of every item before scoring (chat "
                          "template included).")]


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _show_prompts(sim, items) -> None:
    for item, prompt in zip(items, sim.prompts(items), strict=True):
        typer.echo(f"--- prompt of {item.id} ---\n{prompt}\n--- end ---")


def _warn_doubts(found, sim) -> None:
    for doubt in found:
        _warn(doubt.message(sim.model_note()))


def _populations(names: list[str], file: Path | None, allow_unknown: bool) -> list:
    """The populations of the flags, then of ``file`` (one per line, or a CSV's
    ``population`` column), resolved; a bad one is refused naming where it came from."""
    from surveytune.data.populations import UnknownPopulation, resolve_population

    entries = [(name, "--population") for name in names]
    if file is not None:
        entries += _population_file(file)
    if not entries:
        raise DataError("name at least one population (--population or --populations)",
                        file="--population")
    resolved = []
    for name, where in entries:
        try:
            resolved.append(resolve_population(name, allow_unknown=allow_unknown))
        except UnknownPopulation as exc:
            raise DataError(f"{exc.message} (--allow-unknown-populations simulates it anyway)",
                            file=where) from None
        except DataError as exc:
            raise DataError(exc.message, file=where) from None
    return list({p.name: p for p in resolved}.values())  # each once, first order


def _population_file(path: Path) -> list[tuple[str, str]]:
    import csv

    from surveytune.data.readers import _read_text

    text = _read_text(path)
    lines = text.split("\n")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(lines))
        if not rows or "population" not in rows[0]:
            raise DataError("needs a 'population' column", file=path, line=1)
        return [(row["population"].strip(), f"{path}:{number}")
                for number, row in enumerate(rows, start=2) if row["population"].strip()]
    return [(line.strip(), f"{path}:{number}") for number, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _questions(question: str | None, options: list[str] | None, file: Path | None) -> list:
    from surveytune.data.questionnaire import Question, load_questionnaire

    if file is not None:
        if question or options:
            raise DataError("give --questions FILE or --question with --option, not both",
                            file="--questions")
        return load_questionnaire(file)
    if not question or not options:
        raise DataError("give --questions FILE, or --question with its --option values",
                        file="--question")
    one = Question("user", "q", question, tuple(options))
    try:
        one.item("-", "custom")
    except DataError as exc:
        flag = "--question" if exc.field == "question" else "--option"
        raise DataError(exc.message, file=flag) from None
    return [one]


@with_backend_flags
def predict(question: Annotated[Optional[str], typer.Option(help="The question text.")] = None,
            option: Annotated[Optional[list[str]], typer.Option(
                "--option", help="An answer option (repeat, in order).")] = None,
            questions: Annotated[Optional[Path], typer.Option(
                help="A questionnaire file: CSV (question_id,question,option rows) or JSONL "
                     "(question_id, question, options), or a survey file's questions.")] = None,
            population: Annotated[Optional[list[str]], typer.Option(
                "--population", "--country", help="A country (any name or ISO code "
                "country_converter knows) or a GSS subgroup 'ATTRIBUTE: group', e.g. "
                "'POLPARTY: Democrat' (repeat; --country is an alias).")] = None,
            populations: Annotated[Optional[Path], typer.Option(
                help="A file of populations: one per line, or a CSV's population column.")]
            = None,
            out: Annotated[Optional[Path], typer.Option(
                help="Write the long-form table (question_id, population, option, share, "
                     "method, model) as .csv, .jsonl or .parquet.")] = None,
            observed: Annotated[Optional[Path], typer.Option(
                help="Answers you already have (a survey file): those cells are returned as "
                     "observed, the others also get the similar-populations prediction.")]
            = None,
            reference: Annotated[Optional[Path], typer.Option(
                help="Past answers (e.g. the training file) that say how alike populations "
                     "are, for similar-populations.")] = None,
            model: ModelOpt = "smollm2-135m-instruct", adapter: AdapterOpt = None,
            chat: ChatOpt = None, template: TemplateOpt = None,
            prompt: PromptOpt = None, order_average: OrderAverageOpt = False,
            show_prompt: ShowPromptOpt = False,
            allow_unknown_populations: AllowUnknownOpt = False, as_json: JsonFlag = False,
            elicit: ElicitOpt = "logprobs", samples: SamplesOpt = None,
            on_parse_failure: ParseFailureOpt = "error", seed: SeedOpt = 0,
            *, backend: BackendChoice):
    """Predict the share of each population choosing each option of each question."""
    from surveytune.data.loaders import load_items
    from surveytune.data.questionnaire import TABLE_FORMATS, items_for, write_table
    from surveytune.methods.knowledge import doubts_in_table
    from surveytune.report.tables import distribution_table

    asked = _questions(question, option, questions)
    people = _populations(population or [], populations, allow_unknown_populations)
    seen, past = (None if path is None else load_items(
        path, allow_unknown_populations=allow_unknown_populations)
        for path in (observed, reference))  # bad data fails before the model loads
    if out is not None:
        if out.suffix.lower() not in TABLE_FORMATS:
            raise DataError(f"write the table as {', '.join(TABLE_FORMATS)}", file="--out")
        check_out_file(out)
    sim = load_simulator(model, adapter, chat, load_template(template), 8, order_average,
                         backend, prompt,
                         elicitation_flags(elicit, samples, on_parse_failure, seed))
    items = items_for(asked, [(p.name, p.kind) for p in people])
    check_prompts(sim, items)
    if show_prompt:
        _show_prompts(sim, items)
    frame = sim.predict_frame(asked, people, observed=seen, reference=past,
                              progress=len(items) > 64)
    if out is not None:
        write_table(frame, out)
    if as_json:
        typer.echo(frame.to_json(orient="records"))
    else:
        typer.echo(f"method: {sim.label}, model: {sim.model_name}")
        for (_, _, method), rows in frame.groupby(["survey", "question_id", "method"],
                                                 sort=False):
            table = rows.pivot(index="population", columns="option", values="share")
            table = table.loc[list(dict.fromkeys(rows["population"])),
                              list(dict.fromkeys(rows["option"]))]
            distribution_table(table, title=f"{rows['question'].iloc[0]} ({method})")
        if out is not None:
            typer.echo(f"wrote {len(frame)} rows to {out}")
    _warn_doubts(doubts_in_table(frame[frame["method"] == sim.label]), sim)


def _observed_note(seen, splits) -> None:
    if seen:
        cells = {(i.survey, i.question_id, i.population) for i in seen}
        skipped = sum((i.survey, i.question_id, i.population) in cells
                      for items in splits.values() for i in items)
        print(f"--observed: {len(seen)} observed cells; {skipped} items of --data are among "
              "them and are not scored", file=sys.stderr)


def _calibration_record(sim, adapter: Path | None) -> dict | None:
    """metrics.json's calibration: the one the adapter or calibration record holds."""
    if sim.calibration is None:
        return None
    return {"source": str(adapter), "calibration": sim.calibration.to_dict(),
            "prior": None if sim.prior is None else sim.prior.name,
            "backend": sim.backend.name, "model": sim.model_name, "elicit": sim.elicit}


def _check_split_names(data: list[Path]) -> None:
    """Each --data file names its split: two files with one stem are refused."""
    seen: dict[str, Path] = {}
    for path in data:
        if path.stem in seen:
            raise DataError(f"split name {path.stem!r} also comes from {seen[path.stem]}; "
                            "rename one file", file=path, field="--data")
        seen[path.stem] = path


def _elicitation(sim, table) -> dict:
    """metrics.json's record of how the distributions were asked for, and per split the
    answers that could not be read (left out of the scores) with their share."""
    return {"mode": sim.elicit, "samples": sim.samples, "seed": sim.seed,
            "on_parse_failure": sim.on_parse_failure,
            "endpoint": getattr(sim.backend, "endpoint", None),
            "failures": table.attrs.get("failures", {})}


@with_backend_flags
def evaluate(data: Annotated[list[Path], typer.Option("--data", help="Survey file(s); each "
             "file is one split named after the file.")],
             out: Annotated[Path, typer.Option(help="Folder for metrics.json and "
                                                    "predictions.jsonl.")],
             reference: Annotated[Optional[Path], typer.Option(
                 help="Past answers (a training split, earlier waves): the population-mean "
                      "baselines are fitted on it.")] = None,
             observed: Annotated[Optional[Path], typer.Option(
                 help="Answers you already have (some populations of a new question, a new "
                      "population's answers to some questions): adds the similar-populations "
                      "baseline; those cells of --data are not scored.")] = None,
             model: ModelOpt = "smollm2-135m-instruct", adapter: AdapterOpt = None,
             chat: ChatOpt = None, template: TemplateOpt = None,
             prompt: PromptOpt = None, batch_size: int = 8, order_average: OrderAverageOpt = False,
             show_prompt: ShowPromptOpt = False,
             allow_unknown_populations: AllowUnknownOpt = False, as_json: JsonFlag = False,
             elicit: ElicitOpt = "logprobs", samples: SamplesOpt = None,
             on_parse_failure: ParseFailureOpt = "error", seed: SeedOpt = 0, *,
             backend: BackendChoice):
    """Score a model on survey files beside the baselines, with paired 95% intervals.

    The model is zero-shot, or fine-tuned with --adapter. Each baseline's row holds the
    model's difference to it and its interval, resampling whole questions.

    With --backend openai, --adapter names the folder whose record (chat, template, prior)
    applies to the adapter the server serves as --model. --adapter also takes a calibration
    record from `surveytune calibrate` (a model as it is, on any backend)."""
    from surveytune.data import runfolder
    from surveytune.data.loaders import load_items
    from surveytune.data.records import read_predictions
    from surveytune.methods.knowledge import doubts
    from surveytune.report.tables import scorecard_table

    _flag("--batch-size", batch_size, minimum=1)
    _check_split_names(data)
    splits = {path.stem: load_items(path, allow_unknown_populations=allow_unknown_populations)
              for path in data}  # fail on bad data before loading
    past, seen = (None if path is None else load_items(
        path, allow_unknown_populations=allow_unknown_populations)
        for path in (reference, observed))
    _observed_note(seen, splits)
    runfolder.check(out, "evaluate")
    how = elicitation_flags(elicit, samples, on_parse_failure, seed)
    sim = load_simulator(model, adapter, chat, load_template(template), batch_size, order_average,
                         backend, prompt, how)
    check_prompts(sim, *splits.values())
    if show_prompt:
        for items in splits.values():
            _show_prompts(sim, items)
    with runfolder.claim(out, "evaluate"):
        table = sim.evaluate(splits, reference=past, observed=seen,
                             predictions_path=out / "predictions.jsonl")
        rows = json.loads(table.to_json(orient="records"))
        payload = {"results": rows, "model": model, "method": sim.label,
                   "adapter": None if adapter is None else str(adapter),
                   "reference": None if reference is None else str(reference),
                   "observed": None if observed is None else str(observed),
                   "dtype": backend.options.get("dtype", "auto"), "chat": sim.chat,
                   "backend": backend.name, "prompt": sim.prompt,
                   "order_average": order_average,
                   "prior": None if sim.prior is None else sim.prior.name,
                   "elicitation": _elicitation(sim, table)}
        payload["calibration"] = _calibration_record(sim, adapter)
        write_json(out / "metrics.json", payload)
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        scorecard_table(table, title=f"{sim.label} ({sim.model_name})")
        typer.echo(f"wrote {out / 'metrics.json'} and {out / 'predictions.jsonl'}")
    records = read_predictions(out / "predictions.jsonl")
    for split in splits:
        mine = [r for r in records if r.split == split]
        _warn_doubts(doubts([r.to_item() for r in mine], [r.predicted for r in mine]), sim)
