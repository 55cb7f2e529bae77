"""surveytune: specialise language models to simulate how populations answer surveys.

The model-side names (``Simulator``, ``TrainConfig``) are imported lazily so that data-only
use (and ``surveytune data check``) does not pay for importing torch.
"""

from importlib import import_module
from typing import Any

from .items import DataError, SurveyItem, make_item, write_jsonl
from .metrics import METRIC_NAMES, item_metrics, metrics_table, summarize

_LAZY = {"Simulator": "simulator", "TrainConfig": "training", "DEFAULT_MODEL": "models",
         "load_items": "loaders"}

__all__ = ["DEFAULT_MODEL", "METRIC_NAMES", "DataError", "Simulator", "SurveyItem",
           "TrainConfig", "item_metrics", "load_items", "make_item", "metrics_table",
           "summarize", "write_jsonl"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'surveytune' has no attribute {name!r}")
