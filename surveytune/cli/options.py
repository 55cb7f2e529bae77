"""Command-line options shared by several commands (scoring backends, devices) and the check
that refuses a flag's value naming the flag."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from surveytune.data.items import DataError

BackendOpt = Annotated[str, typer.Option(help="Scoring engine: hf (local transformers) or "
                                              "openai (an OpenAI-compatible server).")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(
    help="openai backend: the server's URL, e.g. http://127.0.0.1:8000/v1 (default "
         "$SURVEYTUNE_BASE_URL). The API key is read from $SURVEYTUNE_API_KEY or "
         "$OPENAI_API_KEY.")]
TokenizerOpt = Annotated[Optional[str], typer.Option(
    help="openai backend: Hugging Face name or folder whose tokenizer renders the prompts "
         "(default: --model).")]
TopLogprobsOpt = Annotated[int, typer.Option(help="openai backend: logprobs requested per "
                                                  "prompt (letters outside get a floor).")]
ConcurrencyOpt = Annotated[int, typer.Option(help="openai backend: requests in flight.")]
MissingOpt = Annotated[str, typer.Option(
    "--missing-letters", help="openai backend: floor (default; warns) or error for letters "
                              "absent from the top logprobs.")]
PrecisionOpt = Annotated[str, typer.Option(
    help="Training arithmetic: auto (bf16-autocast where the device computes bfloat16 "
         "natively: a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX; else float32), "
         "float32 or bf16-autocast.")]
PromptOpt = Annotated[Optional[str], typer.Option(
    help="Prompt style: paper (the population first, the paper's wording) or question-first "
         "(the question and options first, the population named in the answer, so the "
         "question part is computed once for all its populations). Default: the adapter's, "
         "else paper.")]
DeviceOpt = Annotated[str, typer.Option(help="hf backend: auto (a GPU when there is one), "
                                             "cpu, cuda or mps.")]
Load8Opt = Annotated[bool, typer.Option("--load-in-8bit", help="hf backend on CUDA: an 8-bit "
                                                              "base model (bitsandbytes).")]
Load4Opt = Annotated[bool, typer.Option("--load-in-4bit", help="hf backend on CUDA: a 4-bit "
                                                              "base model (bitsandbytes).")]
ChatOpt = Annotated[Optional[bool], typer.Option(
    "--chat/--no-chat", help="Wrap prompts in the chat template (default: if the model has one).")]

def backend_options(backend: str, *, device: str = "auto", load_in_8bit: bool = False,
                     load_in_4bit: bool = False, base_url: str | None = None,
                     tokenizer: str | None = None, top_logprobs: int = 20,
                     concurrency: int = 8, missing: str = "floor") -> dict:
    """The options of the chosen backend; a flag of the other backend is refused."""
    from surveytune.backends.base import BACKENDS

    if backend not in BACKENDS:
        raise DataError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}", file="--backend")
    hf = {"device": device, "load_in_8bit": load_in_8bit, "load_in_4bit": load_in_4bit}
    server = {"base_url": base_url, "tokenizer": tokenizer, "top_logprobs": top_logprobs,
              "concurrency": concurrency, "missing": missing}
    defaults = {"device": "auto", "load_in_8bit": False, "load_in_4bit": False,
                "base_url": None, "tokenizer": None, "top_logprobs": 20, "concurrency": 8,
                "missing": "floor"}
    mine, other = (hf, server) if backend == "hf" else (server, hf)
    for name, value in other.items():
        if value != defaults[name]:
            flag = "--" + name.replace("_", "-").replace("missing", "missing-letters")
            raise DataError(f"applies to another backend than {backend!r}", file=flag)
    return mine


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


def load_simulator(model: str, adapter: Path | None, dtype: str, chat: bool | None,
               template, batch_size: int, order_average: bool = False,
               backend: str = "hf", options: dict | None = None, prompt: str | None = None):
    from surveytune.backends.models import DTYPE_CHOICES, ModelError
    from surveytune.simulator import Simulator

    check_flag("--dtype", dtype, choices=DTYPE_CHOICES)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would break one-line errors
    try:
        return Simulator.load(model, adapter=adapter, dtype=dtype, chat=chat,
                              batch_size=batch_size, template=template,
                              order_average=order_average, backend=backend,
                              prompt=prompt, **(options or {}))
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
