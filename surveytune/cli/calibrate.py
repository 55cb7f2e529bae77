"""``surveytune calibrate``: one calibration for every backend (issue 17, item 4).

A model as it is (zero-shot, local or behind an OpenAI-compatible server) gets the prior and
calibration a fine-tuned model gets from training: a prior fitted on the training file and
the model's scale against it fitted on validation data, written as a calibration record that
``predict``/``evaluate --adapter DIR`` apply, so that a hosted model is compared with the
fine-tuned one on the same footing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from surveytune.cli.options import (
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
    carved_valid,
    check_prompts,
    elicitation_flags,
    load_simulator,
    load_template,
    with_backend_flags,
)
from surveytune.cli.options import check_flag as _flag
from surveytune.data.items import DataError

CALIBRATION_PRIORS = ("region-mean", "country-mean", "population-style", "none")


def _check_out(out: Path) -> None:
    """``--out`` is new, empty or an earlier calibration record (replaced whole)."""
    from surveytune.backends.adapters import META_FILE, AdapterMeta, is_calibration_record

    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder", file="--out")
    if out.is_dir() and any(out.iterdir()) and not (
            (out / META_FILE).is_file() and is_calibration_record(AdapterMeta.read(out))):
        raise DataError(f"{out} holds something other than a calibration record; use another "
                        "folder", file="--out")


@with_backend_flags
def calibrate(train: Annotated[Path, typer.Option("--train", help="Training survey file: the "
                                                  "prior is fitted on it.")],
              out: Annotated[Path, typer.Option(help="Folder for the calibration record "
                                                     "(use it as --adapter).")],
              valid: Annotated[Optional[Path], typer.Option(
                  "--valid", help="Validation file the calibration is fitted on (default: a "
                                  "seeded 10% of the training file's questions).")] = None,
              prior: Annotated[str, typer.Option(
                  help="The prior: region-mean, country-mean, population-style or none "
                       "(then only a temperature).")] = "region-mean",
              model: ModelOpt = "smollm2-135m-instruct", chat: ChatOpt = None,
              template: TemplateOpt = None, prompt: PromptOpt = None, batch_size: int = 8,
              order_average: OrderAverageOpt = False,
              allow_unknown_populations: AllowUnknownOpt = False, as_json: JsonFlag = False,
              elicit: ElicitOpt = "logprobs", samples: SamplesOpt = None,
              on_parse_failure: ParseFailureOpt = "error", seed: SeedOpt = 0,
              *, backend: BackendChoice):
    """Fit a prior and a calibration for a model as it is, on any backend."""
    from surveytune.backends.adapters import AdapterMeta
    from surveytune.data.loaders import load_items

    _flag("--batch-size", batch_size, minimum=1)
    if prior not in CALIBRATION_PRIORS:
        raise DataError(f"unknown prior {prior!r}; choose one of "
                        f"{', '.join(CALIBRATION_PRIORS)}", file="--prior")
    train_items, valid_items = (None if path is None else load_items(
        path, allow_unknown_populations=allow_unknown_populations) for path in (train, valid))
    if valid_items is None:
        train_items, valid_items = carved_valid(train_items, 0)
    _check_out(out)
    sim = load_simulator(model, None, chat, load_template(template), batch_size,
                         order_average, backend, prompt,
                         elicitation_flags(elicit, samples, on_parse_failure, seed))
    check_prompts(sim, valid_items)
    calibration = sim.calibrate(train_items, valid_items, out, prior=prior)
    score = AdapterMeta.read(out).raw["valid_1-jsd_calibrated"]
    summary = {"out": str(out), "prior": prior, **calibration.to_dict(),
               "valid_items": len(valid_items), "valid_1-jsd_calibrated": score}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    fitted = ", ".join(f"{group} questions scale {scale:g}, prior weight "
                       f"{calibration.prior_weights.get(group, 1.0):g}"
                       for group, scale in sorted(calibration.scales.items())) or "no group"
    unfit = [f"{group} ({n} items)" for group, n in calibration.fitted_on.items()
             if group not in calibration.scales]
    typer.echo(f"calibration of {sim.model_name} ({sim.backend.name}) on {len(valid_items)} "
               f"validation items, prior {prior}: {fitted}; valid 1-jsd {score:.3f} "
               "calibrated (on the items it was fitted on)")
    if unfit:
        print("warning: too few validation items to fit " + ", ".join(unfit) + ": those keep "
              "plain anchoring (scale 1); a --valid with items of the training questions for "
              "other populations fits the 'seen' group", file=sys.stderr)
    typer.echo(f"wrote {out}; predict or evaluate with --adapter {out}")


def prefill_template(out: Annotated[Path, typer.Option(help="Where to write the server's "
                                                         "tokenizer_config.json.")],
                     model: ModelOpt = "smollm2-135m-instruct"):
    """Write the chat template that lets llama.cpp's Python server continue the answer
    prefix on its chat endpoint (--endpoint chat agrees with completions then)."""
    from surveytune.backends.models import load_tokenizer
    from surveytune.backends.openai_chat import write_prefill_config

    if out.is_dir():
        raise DataError(f"{out} is a folder, not a file", file="--out")
    write_prefill_config(load_tokenizer(model), str(out))
    typer.echo(f"wrote {out}; start the server with: python -m llama_cpp.server --model "
               f"MODEL.gguf --logits_all true --chat_format hf-tokenizer-config "
               f"--hf_tokenizer_config_path {out}")
