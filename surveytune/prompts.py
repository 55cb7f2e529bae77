"""Prompt templates as data: the paper's wording, option lettering and chat wrapping.

A template turns a :class:`~surveytune.items.SurveyItem` into the text whose next token is
the answer letter. The text always ends with ``answer_prefix`` (e.g. ``"... would be ("``), so
the model's next-token distribution over ``A``, ``B``, ... is the prediction.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from .items import DataError, SurveyItem


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
        return self.user.format(population=item.population, question=item.question,
                                options=self.format_options(item))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PromptTemplate:
        """Read a user template from a JSON file with this class's field names."""
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read template: {exc}", file=path) from None
        allowed = {f.name for f in fields(cls)}
        for key in ("user", "answer_prefix"):
            if not isinstance(raw.get(key), str):
                raise DataError("missing or not a string", file=path, field=key)
        unknown = set(raw) - allowed
        if unknown:
            raise DataError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}",
                            file=path)
        raw.setdefault("name", os.path.basename(os.fspath(path)))
        template = cls(**raw)
        for placeholder in ("{question}", "{options}"):
            if placeholder not in template.user:
                raise DataError(f"must contain {placeholder}", file=path, field="user")
        return template

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

TEMPLATES = {t.name: t for t in (PAPER_EN, PAPER_ZH)}


def template_for(item: SurveyItem, override: PromptTemplate | None = None) -> PromptTemplate:
    """The user's template if given, else the paper's template in the item's language."""
    if override is not None:
        return override
    return PAPER_ZH if item.language == "zh" else PAPER_EN


def build_prompt(item: SurveyItem, tokenizer: Any = None, *, chat: bool = False,
                 template: PromptTemplate | None = None) -> str:
    """The full prompt text for one item.

    Plain: user text followed by the answer prefix. Chat: the user text in the model's chat
    template, and the answer prefix (stripped) as the start of the assistant's reply, as the
    paper does for instruct models.
    """
    template = template_for(item, template)
    user = template.user_text(item)
    if not chat:
        return user + template.answer_prefix
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat prompts need a tokenizer with a chat template")
    head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)
    return head + template.answer_prefix.lstrip()
