"""Prompt templates as data: the paper's wording, option lettering and chat wrapping.

A template turns a :class:`~surveytune.data.items.SurveyItem` into the text whose next token is
the answer letter. The text always ends with ``answer_prefix`` (e.g. ``"... would be ("``), so
the model's next-token distribution over ``A``, ``B``, ... is the prediction.

Two prompt styles (:data:`PROMPT_STYLES`), each with an English, a Chinese and a subgroup
template: ``paper`` names the population first (the paper's wording); ``question-first`` puts
the question and its options first and names the population in the answer, so that every
population of a question shares the whole question part of the prompt, which is computed
once for all of them (:func:`surveytune.backends.scoring.plan_prefixes`).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from surveytune.data.items import DataError, Source, SurveyItem, check_text, make_item
from surveytune.data.populations import subgroup_phrase

USER_FIELDS = ("question", "options", "population")
"""The placeholders of a template: ``user`` must use ``{question}`` and ``{options}``, and
``{population}`` goes in ``user`` or in ``answer_prefix`` (exactly one of them)."""

OPTION_FIELDS = ("letter", "label")
"""The placeholders of ``option_format``."""


@dataclass(frozen=True)
class PromptTemplate:
    """The pieces of a prompt. ``{population}``, ``{question}`` and ``{options}`` are filled in."""

    name: str
    user: str
    answer_prefix: str
    option_format: str = "({letter}){label}"
    option_separator: str = ", "

    def format_options(self, item: SurveyItem) -> str:
        return self.option_separator.join(
            self.option_format.format(letter=letter, label=label)
            for letter, label in zip(item.letters, item.options))

    def user_text(self, item: SurveyItem) -> str:
        return self.user.format(population=population_text(item), question=item.question,
                                options=self.format_options(item))

    @property
    def population_last(self) -> bool:
        """Whether the population is named in the answer, after the question and options."""
        return "population" in _placeholders(self.answer_prefix)

    def answer_text(self, item: SurveyItem) -> str:
        if not self.population_last:
            return self.answer_prefix
        return self.answer_prefix.format(population=population_text(item))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PromptTemplate:
        """Read a template from a JSON object with this class's field names, and check it by
        formatting a dummy item: ``user`` must use exactly ``{population}``, ``{question}``
        and ``{options}``, ``option_format`` ``{letter}`` and ``{label}``, and
        ``answer_prefix`` must end in ``(``."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise DataError("file not found", file=path) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"invalid UTF-8 at byte {exc.start}", file=path) from None
        except OSError as exc:
            raise DataError(f"cannot read template: {exc.strerror or exc}", file=path) from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=path,
                            line=exc.lineno) from None
        except ValueError:
            raise DataError("invalid JSON: a number with too many digits", file=path) from None
        if not isinstance(raw, dict):
            raise DataError(f"expected a JSON object with 'user' and 'answer_prefix', got "
                            f"a JSON {type(raw).__name__}", file=path)
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise DataError(f"unknown field; allowed: {', '.join(allowed)}", file=path,
                            field=unknown[0])
        raw.setdefault("name", os.path.basename(os.fspath(path)))
        for key in allowed:
            if key in ("user", "answer_prefix") and key not in raw:
                raise DataError("missing", file=path, field=key)
            if key in raw and not isinstance(raw[key], str):
                raise DataError(f"expected a string, got {type(raw[key]).__name__}",
                                file=path, field=key)
            if key in raw:
                check_text(raw[key], Source(os.fspath(path)), key)
        template = cls(**raw)
        template.check(path)
        return template

    def check(self, path: str | os.PathLike | None = None) -> None:
        """Refuse a template that cannot render prompts (see :meth:`from_file`)."""
        last = False
        for name, wanted in (("answer_prefix", ("population",)), ("user", USER_FIELDS),
                             ("option_format", OPTION_FIELDS)):
            try:
                used = _placeholders(getattr(self, name))
            except ValueError as exc:
                raise DataError(f"bad braces: {exc} (write {{{{ and }}}} for literal braces)",
                                file=path, field=name) from None
            for placeholder in sorted(used - set(wanted)):
                raise DataError(f"unknown placeholder {{{placeholder}}}; use "
                                + ", ".join(f"{{{w}}}" for w in wanted), file=path, field=name)
            if name == "answer_prefix":
                last = "population" in used
                continue
            if name == "user" and last and "population" in used:
                raise DataError("{population} is in both user and answer_prefix; name it "
                                "once", file=path, field="user")
            for placeholder in wanted:
                if placeholder not in used and not (placeholder == "population" and last):
                    raise DataError(f"must contain {{{placeholder}}}", file=path, field=name)
        if not self.answer_prefix.endswith("("):
            raise DataError("must end with '(' (the answer letter is the next token)",
                            file=path, field="answer_prefix")
        dummy = make_item(survey="check", question_id="q", question="Q?", options=["a", "b"],
                          distribution=[0.5, 0.5], population="P")
        for name, render in (("option_format", self.format_options), ("user", self.user_text),
                             ("answer_prefix", self.answer_text)):
            try:
                render(dummy)
            except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
                raise DataError(f"cannot be formatted: {type(exc).__name__}: {exc}",
                                file=path, field=name) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PAPER_EN = PromptTemplate(
    name="paper-en",
    user=("How would someone from {population} answer the following question:\n\n"
          "{question} \nHere are the options: \n{options}"),
    answer_prefix=" If had to select one of the options, my answer would be (",
)
"""The paper's English prompt (grammar included), METHOD.md §2."""

PAPER_ZH = PromptTemplate(
    name="paper-zh",
    user="来自{population}的人会如何回答以下问题：\n\n{question}\n以下是选项：\n{options}",
    # The paper's files carry the Chinese instruction and question; this closing sentence is
    # our translation of the English one, ending in an ASCII "(" like the English prompt.
    answer_prefix="如果必须选择其中一个选项，我的答案会是(",
    option_separator="，",
)

SUBGROUP_EN = PromptTemplate(
    name="subgroup-en",
    user=("How would {population} answer the following question:\n\n"
          "{question} \nHere are the options: \n{options}"),
    answer_prefix=" If had to select one of the options, my answer would be (",
)
"""Ours: the paper's English prompt with "someone from {country}" replaced by a subgroup
phrase (:func:`subgroup_phrase`, e.g. "a Democrat in the United States"); the rest is the
paper's wording."""

# Ours: the question and its options first, the population named at the very end of the
# answer's start, so that the populations of a question share everything before it and
# each adds only its name and ": (" (docs/results.md, "Speed").
QUESTION_FIRST_EN = PromptTemplate(
    name="question-first-en",
    user="How would people answer the following question?\n\n{question} \nHere are the "
         "options: \n{options}",
    answer_prefix=" Most likely answer of someone from {population}: (",
)
QUESTION_FIRST_ZH = PromptTemplate(
    name="question-first-zh",
    user="人们会如何回答以下问题？\n\n{question}\n以下是选项：\n{options}",
    answer_prefix="最可能的回答，回答者来自{population}：(",
    option_separator="，",
)
QUESTION_FIRST_SUBGROUP_EN = PromptTemplate(
    name="question-first-subgroup-en",
    user=QUESTION_FIRST_EN.user,
    answer_prefix=" Most likely answer of {population}: (",
)

TEMPLATES = {t.name: t for t in (PAPER_EN, PAPER_ZH, SUBGROUP_EN, QUESTION_FIRST_EN,
                                 QUESTION_FIRST_ZH, QUESTION_FIRST_SUBGROUP_EN)}

PROMPT_STYLES: dict[str, dict[str, PromptTemplate]] = {
    "paper": {"en": PAPER_EN, "zh": PAPER_ZH, "subgroup": SUBGROUP_EN},
    "question-first": {"en": QUESTION_FIRST_EN, "zh": QUESTION_FIRST_ZH,
                       "subgroup": QUESTION_FIRST_SUBGROUP_EN},
}
"""``--prompt``: the template of each kind of item ("en" countries, "zh" Chinese items,
"subgroup" English subgroup items), by style."""


def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def population_text(item: SurveyItem) -> str:
    """What ``{population}`` becomes: the subgroup phrase for subgroups
    (:func:`surveytune.data.populations.subgroup_phrase`), else the name."""
    if item.population_kind == "subgroup":
        return subgroup_phrase(item.population)
    return item.population


def template_for(item: SurveyItem, override: PromptTemplate | None = None,
                 style: str = "paper") -> PromptTemplate:
    """The user's template if given, else the ``style``'s template (:data:`PROMPT_STYLES`) in
    the item's language (for English subgroup items, its subgroup template)."""
    if override is not None:
        return override
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; choose one of "
                         f"{', '.join(PROMPT_STYLES)}")
    templates = PROMPT_STYLES[style]
    if item.language == "zh":
        return templates["zh"]
    return templates["subgroup" if item.population_kind == "subgroup" else "en"]


def build_prompt(item: SurveyItem, tokenizer: Any = None, *, chat: bool = False,
                 template: PromptTemplate | None = None, style: str = "paper") -> str:
    """The full prompt text for one item.

    Plain: user text followed by the answer prefix. Chat: the user text in the model's chat
    template, and the answer prefix (stripped) as the start of the assistant's reply, as the
    paper does for instruct models.
    """
    template = template_for(item, template, style)
    user = template.user_text(item)
    answer = template.answer_text(item)
    if not chat:
        return user + answer
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat prompts need a tokenizer with a chat template")
    head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)
    return head + answer.lstrip()


def check_prompt_lengths(items: Sequence[SurveyItem], tokenizer: Any, context: int, *,
                         chat: bool = False, template: PromptTemplate | None = None,
                         style: str = "paper") -> None:
    """Refuse the first item whose prompt has more tokens than the model's ``context``,
    naming its file and line (its first-token answer would be read past the context)."""
    for item in items:
        prompt = build_prompt(item, tokenizer, chat=chat, template=template, style=style)
        n = len(tokenizer(prompt)["input_ids"])
        if n > context:
            raise item.source.error(f"the prompt has {n} tokens, more than the model's "
                                    f"context of {context}", "question")
