"""The ``openai`` backend: first-token logprobs from any OpenAI-compatible server (vLLM,
llama.cpp's server, SGLang, TGI).

Which endpoint: the **completions** endpoint (``/v1/completions``), with the prompt rendered
here by the model's own chat template (a local tokenizer: ``tokenizer=``, default the model
name) and ``max_tokens=1, logprobs=K``. The chat endpoint is not used: the paper's prompt puts
"...my answer would be (" at the start of the assistant turn, and most servers' chat endpoints
cannot continue an assistant message (vLLM can, with ``continue_final_message``; llama.cpp's
and TGI's cannot), so the rendered prompt would differ from the one the ``hf`` backend scores.

Letters missing from the returned top-K are never silently zero. ``missing_letters="floor"``
(the default) gives each absent letter the most it can have: the smaller of the lowest
returned top-K probability and an equal share of the mass the top-K leaves over, and warns
with the count of such items (raise ``top_logprobs`` to make it rarer);
``missing_letters="error"`` refuses the item. An item whose top-K holds none of its letters is
always refused: the server's tokenizer does not produce them as single tokens after "(", or
the model wants to say something else.

The API key comes from ``$SURVEYTUNE_API_KEY``, else ``$OPENAI_API_KEY``; it is sent as a
bearer token only when one is set (a local server that checks none needs nothing) and never
printed. A server that answers 401 or 403 is refused naming the variables to set. Requests run
in ``concurrency`` threads, each retried ``retries`` times with exponential backoff on
connection errors, timeouts, 429 and 5xx answers (waiting a 429's ``Retry-After`` seconds when
it gives them, at most 30).

``endpoint="chat"`` scores on the chat endpoint instead, and generations (``--elicit
verbalized|sampling``) go to either: :mod:`surveytune.backends.openai_chat`.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from tqdm.auto import tqdm

from surveytune.backends import openai_chat
from surveytune.backends.base import BackendOptions, Generated, ScoringOnly, apply_log_prior
from surveytune.backends.errors import ModelError
from surveytune.backends.models import load_tokenizer
from surveytune.backends.scoring import Prediction, letter_token_ids
from surveytune.data.items import LETTERS
from surveytune.methods import params
from surveytune.methods.elicit import Conversation, letter_variants

API_KEY_VARIABLES = ("SURVEYTUNE_API_KEY", "OPENAI_API_KEY")
MISSING = ("floor", "error")
ENDPOINTS = ("completions", "chat")
RETRY_AFTER_MAX_S = 30.0


@dataclass(frozen=True)
class OpenAIOptions(BackendOptions):
    """``base_url`` (default ``$SURVEYTUNE_BASE_URL``) ends in ``/v1``; ``tokenizer`` (a HF
    name or path; default the model) renders the prompts locally; ``top_logprobs`` per
    prompt; ``concurrency`` requests in flight, each with ``timeout`` seconds and ``retries``;
    ``missing_letters``: floor or error for letters absent from the top logprobs;
    ``endpoint``: completions or chat (:mod:`surveytune.backends.openai_chat`); ``prefill``:
    auto (probe whether the chat endpoint continues the answer prefix), on or off;
    ``structured_output``: auto, json_schema, json_object or none for verbalized answers;
    ``sampler_extras``: also send ``top_k=0, min_p=0`` when sampling (vLLM and llama.cpp
    otherwise cut the distribution's tail; OpenAI's own API refuses the fields)."""

    base_url: str | None = None
    tokenizer: str | None = None
    top_logprobs: int = 20
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 3
    missing_letters: str = "floor"
    trust_remote_code: bool = False
    endpoint: str = "completions"
    prefill: str = "auto"
    structured_output: str = "auto"
    sampler_extras: bool = True

    CONSTRAINTS = {"top_logprobs": params.Interval(1, integer=True),
                   "concurrency": params.Interval(1, integer=True),
                   "timeout": params.Interval(0, closed="neither"),
                   "retries": params.Interval(0, integer=True),
                   "missing_letters": params.Options(MISSING),
                   "trust_remote_code": params.Options((False, True)),
                   "endpoint": params.Options(ENDPOINTS),
                   "prefill": params.Options(openai_chat.PREFILL),
                   "structured_output": params.Options(openai_chat.STRUCTURED),
                   "sampler_extras": params.Options((False, True))}


Options = OpenAIOptions  # the name the registry looks up (surveytune.backends.base)


class MissingLettersWarning(UserWarning):
    """Some option letters were not in the server's top-K logprobs and got a floor."""


def api_key() -> str | None:
    """The API key from the environment (None when none is set: sent without one)."""
    for name in API_KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


def check_base_url(base_url: str | None) -> str:
    """``http(s)://host[:port][/path]`` without a trailing slash (e.g. ``.../v1``)."""
    if not base_url:
        raise ModelError("--base-url: the openai backend needs the server's URL, e.g. "
                         "http://127.0.0.1:8000/v1")
    url = urlparse(base_url)
    try:
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ModelError(f"--base-url: {base_url!r} has a bad port") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ModelError(f"--base-url: {base_url!r} is not an http(s) URL such as "
                         "http://127.0.0.1:8000/v1")
    return base_url.rstrip("/")


def letter_probabilities(top: dict[str, float], k: int, *, missing: str = "floor"
                         ) -> tuple[np.ndarray, float, int]:
    """Log-probabilities of the first ``k`` letters from one top-K dict (token -> logprob),
    the letters' observed mass, and how many letters were floored.

    Raises :class:`ModelError` when no letter is present, or any is absent and ``missing`` is
    ``"error"``."""
    letters = LETTERS[:k]
    present = {letter: top[letter] for letter in letters if letter in top}
    if not present:
        shown = ", ".join(repr(t) for t in list(top)[:5])
        raise ModelError(f"none of the option letters {letters[0]}..{letters[-1]} is among the "
                         f"server's top {len(top)} next tokens (it returned {shown}): its "
                         "tokenizer does not give them as single tokens after '(', or the model "
                         "wants another token; first-token scoring cannot be used")
    absent = [letter for letter in letters if letter not in present]
    if absent and missing == "error":
        raise ModelError(f"option letter(s) {', '.join(absent)} are not among the server's top "
                         f"{len(top)} next tokens; raise --top-logprobs or use the floor")
    observed = float(sum(math.exp(v) for v in present.values()))
    values = np.empty(k)
    for i, letter in enumerate(letters):
        values[i] = present.get(letter, np.nan)
    if absent:
        lowest = min(math.exp(v) for v in top.values())
        left = max(1.0 - float(sum(math.exp(v) for v in top.values())), 0.0)
        floor = max(min(lowest, left / len(absent)), 1e-12)
        values[np.isnan(values)] = math.log(floor)
    return values, observed, len(absent)


@dataclass
class OpenAIBackend(ScoringOnly):
    """Scores prompts on an OpenAI-compatible server (completions or chat endpoint)."""

    model_name: str
    base_url: str
    tokenizer: Any
    key: str | None = field(repr=False)
    top_logprobs: int = 20
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 3
    missing: str = "floor"
    endpoint: str = "completions"
    prefill: str = "auto"
    structured: str = "auto"
    sampler_extras: bool = True
    name: str = "openai"
    uses_conversations: bool = True

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._continues: bool | None = None
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def _count(self, answer: dict) -> None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        with self._lock:
            self.usage["requests"] += 1
            for key in ("prompt_tokens", "completion_tokens"):
                value = usage.get(key) if isinstance(usage, dict) else None
                self.usage[key] += value if isinstance(value, int) else 0

    def _session(self) -> Any:
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            if self.key:
                self._local.session.headers["Authorization"] = f"Bearer {self.key}"
        return self._local.session

    def request(self, method: str, path: str, payload: dict | None = None, *,
                retries: int | None = None) -> dict:
        """One JSON request with retries and backoff; one-line :class:`ModelError` on
        failure (the key is never part of a message)."""
        import requests

        attempts = 1 + (self.retries if retries is None else retries)
        url = f"{self.base_url}{path}"
        problem = ""
        wait = 0.0
        for attempt in range(attempts):
            if attempt:
                time.sleep(wait or min(0.5 * 2 ** (attempt - 1), 8.0))
            wait = 0.0
            try:
                answer = self._session().request(method, url, json=payload,
                                                 timeout=self.timeout)
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g} s"
                continue
            except requests.RequestException as exc:
                problem = f"cannot reach the server ({type(exc).__name__})"
                continue
            if answer.status_code == 429 or answer.status_code >= 500:
                problem = f"HTTP {answer.status_code}: {_message(answer)}"
                wait = _retry_after(answer)
                continue
            if answer.status_code in (401, 403):
                sent = "the key in" if self.key else "no key; set"
                raise ModelError(f"the server at {self.base_url} refused {method} {path}: "
                                 f"HTTP {answer.status_code}: {_message(answer)} (sent {sent} "
                                 "$SURVEYTUNE_API_KEY or $OPENAI_API_KEY)")
            if answer.status_code >= 400:
                raise ModelError(f"the server at {self.base_url} refused {method} {path}: "
                                 f"HTTP {answer.status_code}: {_message(answer)}")
            try:
                body = answer.json()
                self._count(body)
                return body
            except ValueError:
                raise ModelError(f"the server at {self.base_url} answered {path} with "
                                 "something other than JSON; is --base-url right (it usually "
                                 "ends in /v1)?") from None
        raise ModelError(f"{method} {url} failed after {attempts} attempt(s): {problem}")

    def check_server(self) -> None:
        """The server answers ``/models`` and serves ``model_name``."""
        listing = self.request("GET", "/models", retries=0)
        served = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if not isinstance(listing.get("data"), list):
            raise ModelError(f"{self.base_url}/models is not an OpenAI model list; is "
                             "--base-url right (it usually ends in /v1)?")
        if served and self.model_name not in served:
            raise ModelError(f"--model: the server at {self.base_url} does not serve "
                             f"{self.model_name!r}; it serves {', '.join(map(str, served))}")

    def _one(self, prompt: str, k: int, log_prior: Sequence[float] | None
             ) -> tuple[Prediction, int]:
        body = {"model": self.model_name, "prompt": prompt, "max_tokens": 1,
                "logprobs": self.top_logprobs, "temperature": 0.0, "echo": False}
        answer = self.request("POST", "/completions", body)
        try:
            top = answer["choices"][0]["logprobs"]["top_logprobs"][0]
        except (KeyError, IndexError, TypeError):
            raise ModelError("the server's completion carries no top_logprobs; it does not "
                             "support logprobs on the completions endpoint") from None
        values, observed, floored = letter_probabilities(dict(top), k, missing=self.missing)
        return Prediction(apply_log_prior(values, log_prior), observed), floored

    def _one_chat(self, conv: Conversation, log_prior: Sequence[float] | None
                  ) -> tuple[Prediction, int]:
        prefill = self.continues()
        body = openai_chat.chat_body(self.model_name, openai_chat.messages(conv, prefill=prefill),
                                     max_tokens=1, logprobs=True, top_logprobs=self.top_logprobs,
                                     temperature=0.0)
        answer = self.request("POST", "/chat/completions", body)
        top = letter_variants(openai_chat.first_top_logprobs(answer))
        values, observed, floored = letter_probabilities(top, conv.n_options,
                                                         missing=self.missing)
        how = "chat-prefill" if prefill else "chat-instruction"
        return Prediction(apply_log_prior(values, log_prior), observed, elicitation=how), floored

    def continues(self) -> bool:
        """Whether the chat endpoint continues the answer prefix (probed once, or set by
        ``prefill=on|off``)."""
        if self._continues is None:
            self._continues = (self.prefill == "on" if self.prefill != "auto"
                               else openai_chat.continues_prefix(self))
        return self._continues

    def _run(self, jobs: Sequence[tuple[Any, ...]], call: Any, progress: bool,
             desc: str) -> list[Any]:
        """``call(*job)`` for every job in ``concurrency`` threads, in order; the first
        error ends the run."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, \
                tqdm(total=len(jobs), desc=desc, unit="item", disable=not progress,
                     leave=False) as bar:
            futures = [pool.submit(call, *job) for job in jobs]
            results = []
            try:
                for future in futures:
                    results.append(future.result())
                    bar.update(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return results

    def score(self, prompts: Sequence[str], n_options: Sequence[int], *, chat: bool,
              log_priors: Sequence[Sequence[float]] | None = None, progress: bool = True,
              desc: str = "scoring", conversations: Sequence[Conversation] | None = None
              ) -> list[Prediction]:
        del chat  # the rendered text carries its special tokens; the server parses them
        if len(prompts) != len(n_options):
            raise ValueError("one option count per prompt is needed")
        if log_priors is not None and len(log_priors) != len(prompts):
            raise ValueError("one log prior per prompt is needed")
        priors = log_priors if log_priors is not None else [None] * len(prompts)
        if self.endpoint == "chat":
            if conversations is None or len(conversations) != len(prompts):
                raise ValueError("the chat endpoint needs one conversation per prompt")
            results = self._run(list(zip(conversations, priors)), self._one_chat, progress,
                                desc)
        else:
            results = self._run(list(zip(prompts, n_options, priors)), self._one, progress,
                                desc)
        floored = sum(1 for _, n in results if n)
        if floored:
            warnings.warn(f"{floored} of {len(prompts)} items had option letters outside the "
                          f"server's top {self.top_logprobs} logprobs; those letters got a "
                          "floor probability (raise --top-logprobs to avoid it)",
                          MissingLettersWarning, stacklevel=2)
        return [prediction for prediction, _ in results]

    def sampler_fields(self, temperature: float) -> dict[str, Any]:
        """Fields that make a sampled answer follow the whole distribution."""
        if temperature <= 0:
            return {}
        return {"top_p": 1.0, **({"top_k": 0, "min_p": 0.0} if self.sampler_extras else {})}

    def _generate_one(self, conv: Conversation, samples: int, temperature: float, seed: int,
                      max_tokens: int, schema: dict | None) -> list[Generated]:
        if self.endpoint == "completions":
            if schema is not None:
                raise ModelError("--elicit verbalized needs --endpoint chat (structured "
                                 "output is a chat request)")
            return [openai_chat.generate_completion(self, conv, temperature=temperature,
                                                    seed=seed + j, max_tokens=max_tokens)
                    for j in range(samples)]
        prefill = bool(conv.prefix) and self.continues()
        return [openai_chat.generate_chat(self, conv, prefill=prefill, temperature=temperature,
                                          seed=seed + j, max_tokens=max_tokens, schema=schema)
                for j in range(samples)]

    def generate(self, conversations: Sequence[Conversation], *, samples: int = 1,
                 temperature: float = 0.0, seed: int = 0, max_tokens: int = 16,
                 schemas: Sequence[dict | None] | None = None, chat: bool = True,
                 progress: bool = True, desc: str = "generating") -> list[list[Generated]]:
        """``samples`` answers per conversation (answer j with seed ``seed + j``); ``chat``
        is carried by the rendered prompt and the endpoint."""
        del chat
        schemas = schemas if schemas is not None else [None] * len(conversations)
        jobs = [(c, samples, temperature, seed, max_tokens, s)
                for c, s in zip(conversations, schemas)]
        return self._run(jobs, self._generate_one, progress, desc)

    def context_length(self) -> int | None:
        return None  # the server refuses a prompt that is too long (one ModelError line)


def _retry_after(answer: Any) -> float:
    """A 429's Retry-After in seconds (0: none given or not a number), at most 30."""
    try:
        return min(max(float(answer.headers.get("Retry-After", 0)), 0.0), RETRY_AFTER_MAX_S)
    except (TypeError, ValueError):
        return 0.0


def _message(answer: Any) -> str:
    """The error message of a server's answer, on one line, shortened."""
    try:
        body = answer.json()
        error = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
        text = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except ValueError:
        text = answer.text
    return " ".join(str(text).split())[:300]


def load(model: str, options: OpenAIOptions) -> OpenAIBackend:
    """Connect to the server at the options' ``base_url`` (or ``$SURVEYTUNE_BASE_URL``)
    serving ``model``; their ``tokenizer`` (default ``model``) renders the prompts locally."""
    base = check_base_url(options.base_url or os.environ.get("SURVEYTUNE_BASE_URL"))
    key = api_key()
    try:
        local = load_tokenizer(options.tokenizer or model,
                               trust_remote_code=options.trust_remote_code)
    except ModelError as exc:
        if options.tokenizer is not None:
            raise
        raise ModelError(f"{exc}; pass --tokenizer with the served model's Hugging Face name "
                         "or folder (prompts are rendered locally)") from None
    letter_token_ids(local)  # refuse a tokenizer whose letters are not single tokens
    backend = OpenAIBackend(model, base, local, key, top_logprobs=options.top_logprobs,
                            concurrency=options.concurrency, timeout=options.timeout,
                            retries=options.retries, missing=options.missing_letters,
                            endpoint=options.endpoint, prefill=options.prefill,
                            structured=options.structured_output,
                            sampler_extras=options.sampler_extras)
    backend.check_server()
    return backend
