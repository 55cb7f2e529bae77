"""Generated answers from a local transformers model, for ``--elicit verbalized|sampling``
on the ``hf`` backend: the conversation's rendered prompt (chat template included), greedy at
temperature 0, else sampled at the temperature over the whole vocabulary (no top-k, top-p),
answer j of a prompt seeded with ``seed + j`` (``torch.manual_seed``). No grammar constrains
the text: a verbalized answer is parsed strictly and a failure counted like a server's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from surveytune.backends.base import Generated
from surveytune.backends.scoring import encode
from surveytune.methods.elicit import Conversation


def generate_local(model: Any, tokenizer: Any, conversations: Sequence[Conversation], *,
                   chat: bool, samples: int = 1, temperature: float = 0.0, seed: int = 0,
                   max_tokens: int = 16, progress: bool = True,
                   desc: str = "generating") -> list[list[Generated]]:
    """``samples`` answers per conversation, decoded without special tokens."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    out = []
    for conv in tqdm(conversations, desc=desc, unit="item", disable=not progress, leave=False):
        ids = torch.tensor([encode(tokenizer, [conv.rendered], chat=chat)[0]], device=device)
        answers = []
        for j in range(samples):
            torch.manual_seed(seed + j)
            sampled = temperature > 0
            extra = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if sampled else {}
            with torch.no_grad():
                tokens = model.generate(ids, attention_mask=torch.ones_like(ids),
                                        max_new_tokens=max_tokens, do_sample=sampled,
                                        pad_token_id=pad, **extra)
            text = tokenizer.decode(tokens[0, ids.shape[1]:], skip_special_tokens=True)
            answers.append(Generated(text, None, "hf"))
        out.append(answers)
    return out
