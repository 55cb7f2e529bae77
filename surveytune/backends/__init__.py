"""Scoring engines behind one interface (:mod:`surveytune.backends.base`): local transformers
(``hf``) and OpenAI-compatible servers (``openai``), with model loading, precision and adapters."""
