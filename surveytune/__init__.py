"""surveytune: specialise language models to simulate how populations answer surveys.

Only the data-side names are imported eagerly; the others are imported on first use, so that
``import surveytune`` (and the command line's ``--help`` and ``surveytune data check``) does
not pay for numpy, scipy, pandas or torch.
"""

from importlib import import_module
from typing import Any

from surveytune.data.files import write_jsonl
from surveytune.data.items import DataError, SurveyItem, make_item

_LAZY = {"Simulator": "simulator", "TrainConfig": "training.config",
         "DEFAULT_MODEL": "backends.model_names", "load_items": "data.loaders",
         "METRIC_NAMES": "methods.metrics", "item_metrics": "methods.metrics",
         "metrics_table": "methods.metrics", "summarize": "methods.metrics"}

__all__ = ["DEFAULT_MODEL", "METRIC_NAMES", "DataError", "Simulator", "SurveyItem",
           "TrainConfig", "item_metrics", "load_items", "make_item", "metrics_table",
           "summarize", "write_jsonl"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'surveytune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
