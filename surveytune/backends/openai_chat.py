"""The openai backend's chat endpoint (``/v1/chat/completions``) and its generations.

Letter logprobs on the chat endpoint: the question is the user turn and the answer prefix
("... my answer would be (") the start of the assistant's turn, sent with
``continue_final_message: true, add_generation_prompt: false`` (vLLM's fields; a server that
ignores them closes the assistant message and opens a new one). Whether the server really
continues it is probed once (:func:`continues_prefix`): the assistant's text ends mid-word
("The capital of France is Par"), and the first token must be the completions endpoint's on
the same prompt rendered here (or, without that endpoint, the rest of a word). Where it
does not, the prefix is dropped and :data:`~surveytune.methods.elicit.INSTRUCTION` ("Answer
with the letter of one option alone.") closes the user turn; each prediction says which ran
(``chat-prefill`` or ``chat-instruction``). The first token's top logprobs are read from
``choices[0].logprobs.content[0].top_logprobs``, every variant of a letter summed
(:func:`~surveytune.methods.elicit.letter_variants`).

llama.cpp's Python server (llama-cpp-python 0.3.36) takes no per-request template fields: its
chat handler always appends an empty assistant turn. Started with ``--chat_format
hf-tokenizer-config --hf_tokenizer_config_path FILE`` where FILE is
:func:`prefill_tokenizer_config`'s output, it continues a final assistant message with the
model's own template (``bench/llama_server.py --chat-prefill``).

Structured output for verbalized answers (``structured_output``): ``json_schema`` (OpenAI's
``response_format: {"type": "json_schema", ...}``, vLLM), ``json_object`` (llama-cpp-python's
``{"type": "json_object", "schema": ...}``), ``none``, or ``auto``: json_schema first, and
json_object from then on when the server refuses it (HTTP 400 or 422, or an error naming
``response_format``: llama-cpp-python answers HTTP 500)."""

from __future__ import annotations

import json
from typing import Any

from surveytune.backends.base import Generated
from surveytune.backends.errors import ModelError
from surveytune.methods.elicit import INSTRUCTION, Conversation

OpenAIBackend = Any  # surveytune.backends.openai.OpenAIBackend (which imports this module)

PREFILL_FIELDS = {"continue_final_message": True, "add_generation_prompt": False}
PROBE_USER = "Finish my sentence."
PROBE_PREFIX = "The capital of France is Par"
STRUCTURED = ("auto", "json_schema", "json_object", "none")
PREFILL = ("auto", "on", "off")


def messages(conv: Conversation, *, prefill: bool) -> list[dict[str, str]]:
    """The chat of one conversation: the prefix as the assistant's start when ``prefill``,
    else (when it has one) the instruction to answer with the letter alone."""
    if not conv.prefix:
        return [{"role": "user", "content": conv.user}]
    if prefill:
        return [{"role": "user", "content": conv.user},
                {"role": "assistant", "content": conv.prefix}]
    return [{"role": "user", "content": f"{conv.user}\n\n{INSTRUCTION}"}]


def chat_body(model: str, chat: list[dict[str, str]], **fields: Any) -> dict[str, Any]:
    """A chat request; the continuation fields when the last message is the assistant's."""
    body: dict[str, Any] = {"model": model, "messages": chat, **fields}
    if chat[-1]["role"] == "assistant":
        body.update(PREFILL_FIELDS)
    return body


def first_top_logprobs(answer: dict) -> dict[str, float]:
    """token -> logprob of the first answer token (one-line :class:`ModelError` without)."""
    try:
        top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        return {str(t["token"]): float(t["logprob"]) for t in top}
    except (KeyError, IndexError, TypeError, ValueError):
        raise ModelError("the server's chat completion carries no logprobs "
                         "(choices[0].logprobs.content[0].top_logprobs): it does not give "
                         "logprobs on the chat endpoint; use --elicit sampling or "
                         "--elicit verbalized") from None


def continues_prefix(backend: OpenAIBackend) -> bool:
    """Whether the server continues a final assistant message: the probe's first token is
    the completions endpoint's on the same prompt rendered here (when the server has that
    endpoint), else a word's continuation (a lower-case letter with no space before it; a
    new turn starts with a capital or a space)."""
    chat = [{"role": "user", "content": PROBE_USER},
            {"role": "assistant", "content": PROBE_PREFIX}]
    body = chat_body(backend.model_name, chat, max_tokens=1, logprobs=True, top_logprobs=5,
                     temperature=0.0)
    top = first_top_logprobs(backend.request("POST", "/chat/completions", body))
    best = max(top, key=top.get) if top else ""
    rendered = backend.tokenizer.apply_chat_template(chat[:1], tokenize=False,
                                                     add_generation_prompt=True) + PROBE_PREFIX
    try:
        answer = backend.request("POST", "/completions", {
            "model": backend.model_name, "prompt": rendered, "max_tokens": 1, "logprobs": 5,
            "temperature": 0.0}, retries=0)
        reference = dict(answer["choices"][0]["logprobs"]["top_logprobs"][0])
    except (ModelError, KeyError, IndexError, TypeError, ValueError):
        return best[:1].isalpha() and best[:1].islower()
    return bool(reference) and best == max(reference, key=reference.get)


def response_format(kind: str, schema: dict) -> dict[str, Any]:
    if kind == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "shares", "schema": schema, "strict": True}}
    return {"type": "json_object", "schema": schema}


def generate_chat(backend: OpenAIBackend, conv: Conversation, *, prefill: bool,
                  temperature: float, seed: int, max_tokens: int,
                  schema: dict | None) -> Generated:
    """One answer on the chat endpoint (with the schema as structured output, if any)."""
    fields: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature,
                              "seed": seed, **backend.sampler_fields(temperature)}
    body = chat_body(backend.model_name, messages(conv, prefill=prefill), **fields)
    kind = backend.structured
    if schema is not None and kind != "none":
        body["response_format"] = response_format(
            "json_schema" if kind == "auto" else kind, schema)
    trying = schema is not None and kind == "auto"
    try:  # json_schema tried once; llama-cpp-python refuses it with HTTP 500
        answer = backend.request("POST", "/chat/completions", body,
                                 retries=0 if trying else None)
    except ModelError as exc:
        if not trying or not ("response_format" in str(exc) or any(
                f"HTTP {c}" in str(exc) for c in (400, 422))):
            raise
        backend.structured = "json_object"  # llama-cpp-python knows only json_object
        body["response_format"] = response_format("json_object", schema)
        answer = backend.request("POST", "/chat/completions", body)
    label = "chat-prefill" if prefill and conv.prefix else "chat-instruction"
    if not conv.prefix:
        label = "chat"
    try:
        message = answer["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise ModelError("the server's chat completion carries no message") from None
    return Generated(message.get("content"), message.get("refusal"), label)


def generate_completion(backend: OpenAIBackend, conv: Conversation, *, temperature: float,
                        seed: int, max_tokens: int) -> Generated:
    """One answer on the completions endpoint, continuing the rendered prompt."""
    body = {"model": backend.model_name, "prompt": conv.rendered, "max_tokens": max_tokens,
            "temperature": temperature, "seed": seed, **backend.sampler_fields(temperature)}
    answer = backend.request("POST", "/completions", body)
    try:
        text = answer["choices"][0]["text"]
    except (KeyError, IndexError, TypeError):
        raise ModelError("the server's completion carries no text") from None
    return Generated(text, None, "completions")


def prefill_chat_template(template: str) -> str:
    """A Jinja chat template that renders a conversation ending in an assistant message as
    ``template`` renders the conversation before it with the generation prompt, followed by
    that message's text: the assistant's turn is continued. It also drops the empty
    assistant turn llama-cpp-python's ``hf-tokenizer-config`` handler appends."""
    head = ("{%- set ns = namespace(msgs=messages, prefix='', gen=add_generation_prompt "
            "is defined and add_generation_prompt) -%}"
            "{%- if ns.msgs and ns.msgs[-1]['role'] == 'assistant' and not "
            "ns.msgs[-1]['content'] -%}{%- set ns.msgs = ns.msgs[:-1] -%}"
            "{%- set ns.gen = true -%}{%- endif -%}"
            "{%- if ns.msgs and ns.msgs[-1]['role'] == 'assistant' -%}"
            "{%- set ns.prefix = ns.msgs[-1]['content'] -%}{%- set ns.msgs = ns.msgs[:-1] -%}"
            "{%- set ns.gen = true -%}{%- endif -%}"
            "{%- set messages = ns.msgs -%}{%- set add_generation_prompt = ns.gen -%}")
    return head + template + "{{- ns.prefix -}}"


def prefill_tokenizer_config(tokenizer: Any) -> dict[str, str]:
    """The ``tokenizer_config.json`` for llama-cpp-python's ``--chat_format
    hf-tokenizer-config``: the tokenizer's own chat template made to continue a final
    assistant message (:func:`prefill_chat_template`)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        raise ModelError("the tokenizer has no chat template to continue")
    return {"chat_template": prefill_chat_template(template),
            "bos_token": str(tokenizer.bos_token or ""),
            "eos_token": str(tokenizer.eos_token or "")}


def write_prefill_config(tokenizer: Any, path: str) -> str:
    """:func:`prefill_tokenizer_config` written to ``path`` (returned)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(prefill_tokenizer_config(tokenizer), handle)
    return path
