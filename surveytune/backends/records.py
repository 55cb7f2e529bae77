"""Prediction records: what a backend predicted for each item, with what was asked and what
people said, as :mod:`surveytune.data.records` writes them."""

from __future__ import annotations

from collections.abc import Sequence

from surveytune.backends.scoring import Prediction
from surveytune.data.items import SurveyItem
from surveytune.data.records import PredictionRecord
from surveytune.methods.metrics import metrics_table


def prediction_records(split: str, items: Sequence[SurveyItem],
                       predictions: Sequence[Prediction]) -> list[PredictionRecord]:
    """One record per item: what was asked, what people said, what the model said."""
    table = metrics_table(items, [p.distribution for p in predictions])
    return [PredictionRecord(
                id=item.id, split=split, survey=item.survey, population=item.population,
                question_id=item.question_id, question=item.question,
                options=list(item.options), human=list(item.distribution),
                predicted=[round(float(x), 6) for x in pred.distribution],
                letter_mass=round(pred.letter_mass, 6), score=float(score),
                scale_positions=(None if item.scale_positions is None
                                 else list(item.scale_positions)),
                model=(None if pred.model is None
                       else [round(float(x), 6) for x in pred.model]),
                elicitation=pred.elicitation)
            for item, pred, score in zip(items, predictions, table["1-jsd"])]
