"""Verbalized and sampled distributions from any backend that generates (``generate``:
:mod:`surveytune.backends.openai`, :mod:`surveytune.backends.hf`); the reading of the answers
is :mod:`surveytune.methods.elicit`'s.

Every item gets a :class:`~surveytune.backends.scoring.Prediction` in input order. One whose
answer could not be read has a NaN distribution and its ``failure`` set (never a uniform
stand-in); the caller stops or leaves it out and counts it (``--on-parse-failure``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from surveytune.backends.base import Generated
from surveytune.backends.errors import ModelError
from surveytune.backends.scoring import Prediction
from surveytune.data.items import SurveyItem
from surveytune.methods.elicit import (
    Conversation,
    ParseFailure,
    answer_letter,
    parse_shares,
    sampled_distribution,
    shares_schema,
    verbalized_user,
)
from surveytune.methods.prompts import PromptTemplate

SAMPLE_TOKENS = 8  # an answer's letter comes first ("B", "(B)", "B) Yes")


def failure_counts(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """How many answers could not be read (left out of the scores), their share, the reasons,
    and the mean Monte-Carlo standard error of the sampled ones that could."""
    reasons: dict[str, int] = {}
    for p in predictions:
        if p.failure is not None:
            kind = p.failure.split(":")[0].split(" (")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
    count = sum(reasons.values())
    errors = [p.mc_se for p in predictions if p.failure is None and p.mc_se is not None]
    return {"count": count, "share": round(count / max(len(predictions), 1), 6),
            "of": len(predictions), "reasons": reasons,
            "mc_se": round(float(np.mean(errors)), 6) if errors else None}


def failed(item: SurveyItem, reason: str, how: str) -> Prediction:
    """The prediction of an item whose answer gave no distribution."""
    return Prediction(np.full(item.n_options, np.nan), 0.0, elicitation=how, failure=reason)


def _generator(backend: Any) -> Any:
    generate = getattr(backend, "generate", None)
    if generate is None:
        raise ModelError(f"the {backend.name!r} backend does not generate text: --elicit "
                         "verbalized and sampling need one that does (hf, openai)")
    return generate


def verbalized_conversations(items: Sequence[SurveyItem], tokenizer: Any, *, chat: bool,
                             template: PromptTemplate | None, style: str) -> list[Conversation]:
    """The items' verbalized questions, rendered with the chat template when ``chat``."""
    out = []
    for item in items:
        user = verbalized_user(item, template=template, style=style)
        rendered = (tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                  tokenize=False, add_generation_prompt=True)
                    if chat else user + "\n")
        out.append(Conversation(user, "", rendered, item.n_options))
    return out


def verbalized(backend: Any, items: Sequence[SurveyItem], conversations: Sequence[Conversation],
               *, chat: bool, seed: int, progress: bool, desc: str) -> list[Prediction]:
    """One greedy JSON answer per item (the schema as structured output where the server
    has it), parsed strictly and renormalised."""
    answers = _generator(backend)(
        conversations, samples=1, temperature=0.0, seed=seed,
        max_tokens=24 + 12 * max(i.n_options for i in items),
        schemas=[shares_schema(i.n_options) for i in items], chat=chat, progress=progress,
        desc=desc)
    out = []
    for item, (answer, *_) in zip(items, answers):
        try:
            out.append(Prediction(parse_shares(_text(answer), item.n_options), 1.0,
                                  elicitation="verbalized"))
        except ParseFailure as exc:
            out.append(failed(item, str(exc), "verbalized"))
    return out


def sampled(backend: Any, items: Sequence[SurveyItem], conversations: Sequence[Conversation],
            *, samples: int, chat: bool, seed: int, progress: bool,
            desc: str) -> list[Prediction]:
    """``samples`` answers per item at temperature 1, the letter of each counted;
    ``letter_mass`` is the share of answers that named a letter."""
    answers = _generator(backend)(conversations, samples=samples, temperature=1.0, seed=seed,
                                  max_tokens=SAMPLE_TOKENS, chat=chat, progress=progress,
                                  desc=desc)
    out = []
    for item, drawn in zip(items, answers):
        how = f"sampling-{drawn[0].elicitation}" if drawn else "sampling"
        letters, reasons = [], []
        for answer in drawn:
            try:
                letters.append(answer_letter(_text(answer), item.n_options,
                                             prefilled=answer.elicitation != "chat-instruction"))
            except ParseFailure as exc:
                reasons.append(exc.reason)
        try:
            dist, se = sampled_distribution(letters, item.n_options)
        except ParseFailure:
            out.append(failed(item, f"no sample named a letter ({', '.join(sorted(set(reasons)))})",
                              how))
            continue
        out.append(Prediction(dist, len(letters) / len(drawn), elicitation=how, mc_se=se))
    return out


def _text(answer: Generated) -> str | None:
    if answer.refusal:
        raise ParseFailure("refused", " ".join(str(answer.refusal).split())[:80])
    return answer.text


def elicited(backend: Any, items: Sequence[SurveyItem], *, how: str, tokenizer: Any,
             chat: bool, template: PromptTemplate | None, style: str,
             conversations: Sequence[Conversation] | None, samples: int | None, seed: int,
             on_parse_failure: str, progress: bool = True, desc: str = "scoring"
             ) -> list[Prediction]:
    """The model's own verbalized (``how="verbalized"``) or sampled distributions; an
    unreadable answer stops the run (one :class:`ModelError` line naming the item) unless
    ``on_parse_failure`` is ``skip``, when it is returned with its ``failure``.
    ``conversations``: the items' chats, for sampling."""
    if how == "verbalized":
        chats = verbalized_conversations(items, tokenizer, chat=chat, template=template,
                                         style=style)
        found = verbalized(backend, items, chats, chat=chat, seed=seed, progress=progress,
                           desc=desc)
    else:
        found = sampled(backend, items, conversations, samples=samples, chat=chat, seed=seed,
                        progress=progress, desc=desc)
    for item, prediction in zip(items, found):
        if prediction.failure is not None and on_parse_failure == "error":
            raise ModelError(f"item {item.id}: its {how} answer could not be read "
                             f"({prediction.failure}); --on-parse-failure skip leaves such "
                             "items out and counts them")
    return found
