"""surveytune: specialise language models to simulate how populations answer surveys."""

from .items import DataError, SurveyItem, make_item, write_jsonl
from .metrics import METRIC_NAMES, item_metrics, metrics_table, summarize
from .models import DEFAULT_MODEL
from .simulator import Simulator
from .training import TrainConfig

__all__ = ["DEFAULT_MODEL", "METRIC_NAMES", "DataError", "Simulator", "SurveyItem",
           "TrainConfig", "item_metrics", "make_item", "metrics_table", "summarize",
           "write_jsonl"]

__version__ = "0.1.0"
