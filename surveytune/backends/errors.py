"""The one error every backend raises for a model it cannot load or use. Imports nothing
heavy, so the command line can name it without importing torch."""

from __future__ import annotations


class ModelError(RuntimeError):
    """A model that cannot be loaded or used for first-token scoring."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (transformers' messages run over lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
