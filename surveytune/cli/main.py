"""The command line: argument parsing only; every command calls the Python API."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from surveytune.backends.errors import ModelError
from surveytune.cli import ask, calibrate
from surveytune.cli.options import (
    AllowUnknownOpt,
    BackendChoice,
    ChatOpt,
    DeviceOpt,
    DtypeOpt,
    JsonFlag,
    Load4Opt,
    Load8Opt,
    ModelOpt,
    PrecisionOpt,
    PromptOpt,
    TemplateOpt,
    backend_choice,
    check_out_file,
    with_backend_flags,
    write_json,
)
from surveytune.cli.options import carved_valid as _carved
from surveytune.cli.options import check_flag as _flag
from surveytune.cli.options import check_prompts as _check_prompts
from surveytune.cli.options import load_simulator as _simulator
from surveytune.cli.options import load_template as _template
from surveytune.data.items import DataError, DataWarning

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Simulate how populations answer surveys with fine-tuned language models.")
data_app = typer.Typer(no_args_is_help=True, help="Check survey files and build splits.")
app.add_typer(data_app, name="data")

DEFAULT_DATA_DIR = Path("../shared/data")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Folder with the shared survey data.")]
@contextlib.contextmanager
def _flags_named(flags: dict[str, str] | None = None) -> Iterator[None]:
    """Turn the :class:`~surveytune.methods.params.ParameterError` of an object built from
    flags into the one-line error naming the flag, also where the message names another
    parameter in backticks. ``flags``: the parameters whose flag is not ``flag_name(name)``."""
    from surveytune.methods.params import ParameterError, flag_name

    def flag(name: str) -> str:
        return (flags or {}).get(name) or flag_name(name)

    try:
        yield
    except ParameterError as exc:
        message = re.sub(r"`(\w+)`", lambda m: flag(m.group(1)), exc.message)
        raise DataError(message, file=flag(exc.parameter)) from None


@data_app.command("check")
def data_check(file: Path, format: Annotated[str, typer.Option(help="auto, jsonl, csv, "
               "wvs-unified, paper-json, goqa or subpop-gss.")] = "auto",
               allow_unknown_populations: AllowUnknownOpt = False, as_json: JsonFlag = False):
    """Validate a survey file and say what it holds."""
    from surveytune.data.items import describe
    from surveytune.data.loaders import load_items

    items = load_items(file, format=format, allow_unknown_populations=allow_unknown_populations)
    info = {"file": str(file), **describe(items),
            "options": sorted({i.n_options for i in items}),
            "population_kinds": sorted({i.population_kind for i in items}),
            "survey_names": sorted({i.survey for i in items})}
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"{file}: OK — {info['items']} items, {info['populations']} populations, "
               f"{info['questions']} questions, {info['surveys']} survey(s) "
               f"({', '.join(info['survey_names'])}); options per item "
               f"{min(info['options'])}-{max(info['options'])}; "
               f"populations are {', '.join(info['population_kinds'])}")


def _write_splits(out: Path, splits: dict, as_json: bool) -> None:
    from surveytune.data import runfolder
    from surveytune.data.files import write_jsonl

    with runfolder.claim(out, "splits"):
        for name, items in splits.items():
            write_jsonl(items, out / f"{name}.jsonl")
    counts = {name: len(items) for name, items in splits.items()}
    typer.echo(json.dumps(counts) if as_json else
               "\n".join(f"{out / (name + '.jsonl')}: {n} items" for name, n in counts.items()))


@data_app.command("splits")
def data_splits(out: Annotated[Path, typer.Option(help="Folder for the split files.")],
                data_dir: DataDir = DEFAULT_DATA_DIR, as_json: JsonFlag = False):
    """Write train, valid, test_1..test_7 and goqa as canonical JSONL files."""
    from surveytune.data import runfolder
    from surveytune.studies.wvs import study_splits

    runfolder.check(out, "splits")
    splits = study_splits(data_dir)  # everything is loaded and checked before writing
    _write_splits(out, splits, as_json)


@data_app.command("holdout")
def data_holdout(file: Path, out: Annotated[Path, typer.Option(help="Folder for the split "
                                                                    "files.")],
                 population: Annotated[Optional[list[str]], typer.Option(
                     "--population", help="Hold out this population (repeat).")] = None,
                 question: Annotated[Optional[list[str]], typer.Option(
                     "--question", help="Hold out this question id (repeat).")] = None,
                 population_fraction: float = 0.0, question_fraction: float = 0.0,
                 seed: int = 0, allow_unknown_populations: AllowUnknownOpt = False,
                 as_json: JsonFlag = False):
    """Your own splits of one survey file: hold out named or a seeded fraction of populations
    and questions (train, test_questions, test_populations, test_both)."""
    from surveytune.data import runfolder
    from surveytune.data.loaders import load_items
    from surveytune.data.splits import holdout_splits

    _flag("--population-fraction", population_fraction, minimum=0, below=1)
    _flag("--question-fraction", question_fraction, minimum=0, below=1)
    runfolder.check(out, "splits")
    splits = holdout_splits(load_items(file, allow_unknown_populations=allow_unknown_populations),
                            populations=population or (),
                            questions=question or (), population_fraction=population_fraction,
                            question_fraction=question_fraction, seed=seed)
    _write_splits(out, splits, as_json)


@app.command()
def baselines(out: Annotated[Optional[Path], typer.Option(help="Write the results JSON here.")]
              = None, data_dir: DataDir = DEFAULT_DATA_DIR,
              ceiling_n: Annotated[int, typer.Option(help="Respondents per resample.")] = 1200,
              splits: Annotated[Optional[str], typer.Option(help="Comma-separated split names "
                                                            "(default: all).")] = None,
              seed: int = 0, as_json: JsonFlag = False):
    """Score every registered baseline (uniform, country-mean, ..., ceiling) on every split."""
    from surveytune.data.splits import select_splits
    from surveytune.methods.baselines import BaselineOptions, evaluate_baselines
    from surveytune.report.build import results_table
    from surveytune.studies.wvs import HAVE_TEST_ROWS, study_splits

    with _flags_named():
        BaselineOptions(ceiling_n=ceiling_n, seed=seed)  # bad flags refused before any data
    if out is not None:
        check_out_file(out)
    chosen = study_splits(data_dir)
    if splits:
        names = [s.strip() for s in splits.split(",") if s.strip()]
        chosen = select_splits(chosen, ["train", *[n for n in names if n != "train"]])
    rows = evaluate_baselines(chosen, ceiling_n=ceiling_n, seed=seed)
    if splits and "train" not in names:
        rows = [r for r in rows if r["split"] != "train"]
    payload = {"results": rows, "note": HAVE_TEST_ROWS, "ceiling_n": ceiling_n, "seed": seed}
    if out is not None:
        write_json(out, payload)
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        results_table(rows)


GradientCheckpointingOpt = Annotated[bool, typer.Option(
    "--gradient-checkpointing", help="Recompute activations in backward: less memory, slower.")]
TargetModulesOpt = Annotated[str, typer.Option(help="Comma-separated module names, or "
                                                    "all-linear.")]
EvalEveryOpt = Annotated[int, typer.Option(help="Validate every N steps (and at 0 and the end).")]
EvalItemsOpt = Annotated[Optional[int], typer.Option(help="Validate on a seeded subsample of "
                                                          "this size.")]
PriorOpt = Annotated[str, typer.Option(help="Anchor predictions on a training-data baseline: "
                                            "none (the paper), region-mean, country-mean or "
                                            "population-style.")]
HeldoutOpt = Annotated[int, typer.Option(help="Hold out this many training populations (seeded) "
                                              "as extra validation data for unseen populations.")]
SelectOnOpt = Annotated[str, typer.Option(help="Choose the checkpoint on the valid loss, the "
                                               "held-out populations' loss (heldout) or their "
                                               "mean.")]
CalibrateOpt = Annotated[bool, typer.Option(
    "--calibrate", help="After training, fit on the validation items how much of the model to "
                        "add to the prior (one scale for seen questions, one for unseen ones).")]


app.command()(ask.evaluate)


@app.command()
def train(train: Annotated[Path, typer.Option("--train", help="Training survey file.")],
          out: Annotated[Path, typer.Option(help="Run folder (re-run to resume).")],
          valid: Annotated[Optional[Path], typer.Option(
              "--valid", help="Validation file: the checkpoint is chosen on it (default: a "
                              "seeded 10% of the training file's questions, not trained on).")]
          = None,
          model: ModelOpt = "smollm2-135m-instruct", dtype: DtypeOpt = "auto",
          chat: ChatOpt = None, template: TemplateOpt = None, prompt: PromptOpt = None,
          device: DeviceOpt = "auto",
          load_in_8bit: Load8Opt = False, load_in_4bit: Load4Opt = False,
          gradient_checkpointing: GradientCheckpointingOpt = False,
          method: Annotated[str, typer.Option(help="lora or full")] = "lora",
          lora_r: int = 8, lora_alpha: int = 32, lora_dropout: float = 0.05,
          target_modules: TargetModulesOpt = "q_proj,v_proj",
          loss: Annotated[str, typer.Option(help="kl, js, emd or ce")] = "kl",
          lr: float = 1e-4, weight_decay: float = 0.0, batch_size: int = 8, grad_accum: int = 1,
          epochs: float = 1.0, max_steps: Optional[int] = None,
          max_minutes: Optional[float] = None, warmup_ratio: float = 0.05,
          schedule: Annotated[str, typer.Option(help="cosine, linear or constant")] = "cosine",
          max_grad_norm: float = 1.0, eval_every: EvalEveryOpt = 200,
          eval_items: EvalItemsOpt = None, checkpoint_every: int = 25, seed: int = 0,
          precision: PrecisionOpt = "auto", prior: PriorOpt = "none",
          heldout_populations: HeldoutOpt = 0, select_on: SelectOnOpt = "valid",
          calibrate: CalibrateOpt = False, allow_unknown_populations: AllowUnknownOpt = False,
          as_json: JsonFlag = False):
    """Fine-tune a model so its first-token answer distribution matches the training data."""
    from surveytune.data import runfolder
    from surveytune.data.loaders import load_items
    from surveytune.training.config import TrainConfig
    from surveytune.training.distributed import launched_rank

    modules = tuple(t.strip() for t in target_modules.split(",") if t.strip())
    if not modules:
        raise DataError("names no module", file="--target-modules")
    with _flags_named({"learning_rate": "--lr"}):
        config = TrainConfig(
            method=method, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            target_modules=modules, loss=loss, learning_rate=lr, weight_decay=weight_decay,
            batch_size=batch_size, grad_accum=grad_accum, epochs=epochs, max_steps=max_steps,
            max_minutes=max_minutes, warmup_ratio=warmup_ratio, schedule=schedule,
            max_grad_norm=max_grad_norm, eval_every=eval_every, eval_items=eval_items,
            checkpoint_every=checkpoint_every, seed=seed, precision=precision, prior=prior,
            heldout_populations=heldout_populations, select_on=select_on,
            calibrate=calibrate, gradient_checkpointing=gradient_checkpointing)
    train_items, valid_items = (
        None if path is None else load_items(
            path, allow_unknown_populations=allow_unknown_populations) for path in (train, valid))
    if valid_items is None:
        train_items, valid_items = _carved(train_items, seed)
    prompt_template = _template(template)
    main_process = launched_rank() == 0  # under `accelerate launch` only rank 0 owns --out
    if main_process:
        runfolder.check(out, "train")
    sim = _simulator(model, None, chat, prompt_template, batch_size,
                     backend=backend_choice("hf", device=device, dtype=dtype,
                                            load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit),
                     prompt=prompt)
    _check_prompts(sim, train_items, valid_items)
    with runfolder.claim(out, "train") if main_process else contextlib.nullcontext():
        result = sim.fit(train_items, valid_items, out, config)
    if not main_process:
        return
    summary = {"out": str(out), "adapter": str(out / "adapter"), "best_step": result.best_step,
               "best_valid_loss": result.best_valid_loss, "steps_done": result.steps_done,
               "total_steps": result.total_steps, "stopped_by": result.stopped_by}
    stopped = {"steps": "all steps run", "max_minutes": "stopped by --max-minutes"}
    kept = (" (the base weights: training never beat them on validation; the adapter "
            "predicts with them and its prior)" if result.best_step == 0 else "")
    typer.echo(json.dumps(summary) if as_json else
               f"done: {result.steps_done}/{result.total_steps} steps "
               f"({stopped.get(result.stopped_by, result.stopped_by)}); best valid loss "
               f"{result.best_valid_loss:.4f} at step {result.best_step}{kept}; "
               f"adapter in {out / 'adapter'}")


app.command()(ask.predict)
app.command()(calibrate.calibrate)
app.command("prefill-template")(calibrate.prefill_template)


@app.command()
@with_backend_flags
def reproduce(out: Annotated[Optional[Path], typer.Option(
                  help="Run folder (default runs/BUDGET); re-run the same command to resume.")]
              = None,
              budget: Annotated[str, typer.Option(help="quick (<10 min), default (one epoch, "
                                                       "<90 min) or full.")] = "quick",
              data_dir: DataDir = DEFAULT_DATA_DIR, model: ModelOpt = "smollm2-135m-instruct",
              study_name: Annotated[Optional[str], typer.Option(
                  "--study", help="wvs (the paper's WVS countries, the default) or gss "
                                  "(SubPOP's GSS 2022 US subgroups).")] = None,
              recipe: Annotated[Optional[str], typer.Option(
                  help="How to fine-tune: anchored (prior-anchored, calibrated; the WVS "
                       "budgets' own) or paper (the paper's method as this study ran it "
                       "before; the GSS budgets' own).")] = None,
              *, backend: BackendChoice):
    """Run the whole study: baselines, zero-shot, LoRA fine-tuning, evaluation, report."""
    from rich.console import Console

    from surveytune.backends.model_names import resolve_model
    from surveytune.data import runfolder
    from surveytune.data.loaders import find_data_file
    from surveytune.report.build import results_table
    from surveytune.studies.budgets import RECIPES, with_recipe
    from surveytune.studies.registry import DEFAULT_STUDY, get_study, study_names
    from surveytune.studies.runner import Study

    console = Console(stderr=True)
    study_name = study_name or DEFAULT_STUDY
    _flag("--study", study_name, choices=study_names())
    spec = get_study(study_name)
    _flag("--budget", budget, choices=tuple(spec.budgets))
    _flag("--recipe", recipe, choices=tuple(RECIPES), optional=True)
    chosen = with_recipe(spec.budgets[budget], recipe)
    out = out or spec.run_folder(chosen)
    for name in spec.data_files(chosen):
        find_data_file(data_dir, name)
    runfolder.check(out, "reproduce")
    try:
        resolve_model(model)
    except ModelError as exc:
        raise ModelError(f"--model: {exc}") from None
    console.print(f"[bold]study {study_name} ({spec.description}), budget {chosen.name}[/]: "
                  f"{chosen.description}")
    study = Study(out, data_dir, budget=chosen, model=model, study=study_name,
                  log=lambda m: console.print(f"[bold cyan]{m}[/]"), backend=backend.name,
                  backend_options=backend.options)
    with runfolder.claim(out, "reproduce"):
        results = study.run()
    results_table([r for r in results["results"] if r["method"] != "ceiling"])
    typer.echo(f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'report.html'}")


@app.command()
def report(run_dir: Path):
    """Rebuild results.md and report.html from a finished run folder."""
    from surveytune.data.records import RunResults
    from surveytune.report.build import build_report
    from surveytune.studies.registry import get_study

    study = get_study(RunResults.read(run_dir).study)
    for path in build_report(run_dir, study.report()):
        typer.echo(f"wrote {path}")


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    label = "warning" if issubclass(category, DataWarning) else category.__name__
    print(f"{label}: {message}", file=sys.stderr)


def main() -> None:
    """Entry point: bad input ends with one line on stderr and exit code 2 (set
    SURVEYTUNE_DEBUG=1 for the traceback)."""
    import os

    warnings.showwarning = _show_warning
    warnings.filterwarnings("ignore", module="transformers")
    try:
        app()
    except Exception as exc:
        known = (DataError, ValueError, OSError, ModelError)
        if not isinstance(exc, known) or os.environ.get("SURVEYTUNE_DEBUG"):
            raise
        # one line, always: a message may quote text with line breaks or odd characters
        message = " ".join(str(exc).splitlines()) or type(exc).__name__
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
