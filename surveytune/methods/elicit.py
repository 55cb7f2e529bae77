"""Elicitation without a model: how a distribution is asked for and read back.

Three elicitations (:data:`ELICITATIONS`):

    logprobs    the option letters' next-token probabilities after the answer prefix (the
                paper's first-token scoring; every backend's ``score``)
    verbalized  the model writes the share of the population choosing each option as a JSON
                object (:func:`verbalized_user`, :func:`shares_schema`), parsed strictly by
                :func:`parse_shares` and renormalised
    sampling    N answers at temperature 1, the letter of each read by :func:`answer_letter`,
                the distribution the counts over N (:func:`sampled_distribution`, with its
                Monte-Carlo standard error)

An answer that cannot be read is never replaced by a uniform distribution: it raises
:class:`ParseFailure` with the reason, and the caller either stops naming the item or leaves
the item out and counts it (:data:`FAILURE_POLICIES`).

Letter variants: on a chat endpoint the first answer token may be ``A``, `` A``, ``(A``,
``A)``, ``A.`` ...; :func:`letter_variants` sums the probabilities of every top token that is a
letter once whitespace and the brackets/punctuation around it are removed (SubPOP's
``_get_option_logprobs`` sums the same way)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surveytune.data.items import LETTERS, SurveyItem
from surveytune.methods.prompts import PromptTemplate, template_for

ELICITATIONS = ("logprobs", "verbalized", "sampling")
FAILURE_POLICIES = ("error", "skip")

INSTRUCTION = "Answer with the letter of one option alone."
"""Appended to the question when the server cannot continue the answer prefix."""

VERBALIZED = ("\n\nWhat share of them would choose each option? Answer with a JSON object "
              "whose keys are the options' letters and whose values are their shares in "
              "percent, adding up to 100, and nothing else: {example}")
"""The example shows the form only (``{"A": ..., "B": ...}``): a numeric example, such as
equal shares, is copied by small models (SmolLM2-135M answered the equal shares of an earlier
example for 29 of 40 items)."""


def check_elicitation(elicit: str, samples: int | None, on_parse_failure: str,
                      endpoint: str | None) -> None:
    """How distributions are asked for (:mod:`surveytune.methods.elicit`): letter
    ``logprobs``, ``verbalized`` JSON shares or ``sampling`` (``samples`` answers, default
    20); an unreadable answer stops the run (``error``) or is left out and counted (``skip``).
    ``endpoint``: the openai backend's (verbalized needs chat); None for other backends.
    Bad combinations are refused in one line naming the flag."""
    if elicit not in ELICITATIONS:
        raise ValueError(f"--elicit: must be one of {', '.join(ELICITATIONS)}, got {elicit!r}")
    if samples is not None and elicit != "sampling":
        raise ValueError("--samples: applies to --elicit sampling only")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)
                                or samples < 1):
        raise ValueError(f"--samples: must be a whole number of at least 1, got {samples}")
    if on_parse_failure not in FAILURE_POLICIES:
        raise ValueError(f"--on-parse-failure: must be one of {', '.join(FAILURE_POLICIES)}, "
                         f"got {on_parse_failure!r}")
    if elicit == "verbalized" and endpoint not in (None, "chat"):
        raise ValueError("--elicit verbalized: asks the chat endpoint for JSON; add "
                         "--endpoint chat")


class ParseFailure(ValueError):
    """An answer that gives no distribution; ``reason`` is a short kind ("invalid JSON",
    "refused", "no letter", ...), the message says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Conversation:
    """One item as a chat: the user turn, the assistant's answer start (``prefix``, "" for
    none) and the same rendered as one prompt string (what the completions endpoint and a
    local model score)."""

    user: str
    prefix: str
    rendered: str
    n_options: int


def conversation(item: SurveyItem, rendered: str, *, template: PromptTemplate | None = None,
                 style: str = "paper") -> Conversation:
    """The item's logprob prompt as a chat (``rendered`` is :func:`build_prompt`'s text)."""
    chosen = template_for(item, template, style)
    return Conversation(chosen.user_text(item), chosen.answer_text(item).lstrip(), rendered,
                        item.n_options)


def verbalized_user(item: SurveyItem, *, template: PromptTemplate | None = None,
                    style: str = "paper") -> str:
    """The user turn asking for the shares: the template's question (population, question,
    options), then :data:`VERBALIZED` with an example over the item's letters."""
    example = "{" + ", ".join(f'"{letter}": ...' for letter in LETTERS[:item.n_options]) + "}"
    return template_for(item, template, style).user_text(item) + VERBALIZED.format(
        example=example)


def shares_schema(k: int) -> dict[str, Any]:
    """The JSON schema of an answer: every one of the first ``k`` letters, a number 0-100."""
    letters = list(LETTERS[:k])
    return {"type": "object",
            "properties": {letter: {"type": "number", "minimum": 0, "maximum": 100}
                           for letter in letters},
            "required": letters, "additionalProperties": False}


def parse_shares(text: str | None, k: int) -> np.ndarray:
    """The distribution a verbalized answer gives, renormalised. Strict: one JSON object (a
    Markdown code fence around it is allowed), exactly the first ``k`` letters as keys, each
    a finite number >= 0, not all zero; else :class:`ParseFailure`."""
    if text is None or not text.strip():
        raise ParseFailure("empty answer")
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        raise ParseFailure("invalid JSON", repr(text[:80])) from None
    if not isinstance(value, dict):
        raise ParseFailure("not a JSON object", repr(text[:80]))
    letters = list(LETTERS[:k])
    if sorted(value) != sorted(letters):
        raise ParseFailure("wrong keys", f"expected {','.join(letters)}, got "
                           f"{','.join(map(str, value))}")
    shares = []
    for letter in letters:
        share = value[letter]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not \
                math.isfinite(share) or share < 0:
            raise ParseFailure("bad share", f"{letter}: {share!r}")
        shares.append(float(share))
    total = sum(shares)
    if total <= 0:
        raise ParseFailure("all shares zero")
    return np.asarray(shares) / total


def _letter_of(token: str) -> str | None:
    """The capital letter a token stands for (`` A``, ``(A``, ``A)``, ``A.``), else None."""
    core = token.strip().strip("()[]*").rstrip(".:,")
    return core if len(core) == 1 and core in LETTERS else None


def letter_variants(top: Mapping[str, float]) -> dict[str, float]:
    """Top tokens (token -> logprob) with every variant of a letter summed into the bare
    letter (log of the summed probabilities); other tokens kept as they are."""
    merged: dict[str, float] = {}
    for token, logprob in top.items():
        key = _letter_of(token) or token
        merged[key] = float(np.logaddexp(merged[key], logprob)) if key in merged else logprob
    return merged


PREFILLED = re.compile(r"\s*([A-Z])(?![A-Za-z])")
BRACKETED = re.compile(r"\(([A-Z])\)")
LEADING = re.compile(r"\s*([A-Z])(?:[).:,]|\s+[-–]|\s*$)")


def answer_letter(text: str | None, k: int, *, prefilled: bool) -> int:
    """The option index an answer names. After a continued answer prefix ("... would be (")
    the answer must start with the letter (``B``, ``B) Yes``); otherwise a letter alone at the
    start counts (``B``, ``B.``, ``B:``, ``B - Yes``; not the word "I" or "A"), else the first
    letter in brackets (``(B)``). No letter, or one outside the first ``k``, raises
    :class:`ParseFailure`."""
    if text is None or not text.strip():
        raise ParseFailure("empty answer")
    found = PREFILLED.match(text) if prefilled else (LEADING.match(text)
                                                      or BRACKETED.search(text))
    if found is None:
        raise ParseFailure("no letter", repr(text[:40]))
    index = LETTERS.index(found.group(1))
    if index >= k:
        raise ParseFailure("letter out of range", f"{found.group(1)} for {k} options")
    return index


def sampled_distribution(letters: Sequence[int], k: int) -> tuple[np.ndarray, float]:
    """Counts over the answers that named a letter, and the Monte-Carlo standard error: the
    mean over options of sqrt(p (1 - p) / N)."""
    if not letters:
        raise ParseFailure("no sample named a letter")
    counts = np.bincount(np.asarray(letters, dtype=int), minlength=k)[:k].astype(float)
    n = counts.sum()
    p = counts / n
    return p, float(np.mean(np.sqrt(p * (1 - p) / n)))
