"""The study's data: the paper's WVS splits plus the unseen GlobalOpinionQA survey."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .items import SurveyItem
from .loaders import find_data_file, load_goqa, load_wvs_unified
from .splits import build_paper_splits

UNSEEN_SURVEY = "goqa"
"""GlobalOpinionQA's Pew rows (its WVS rows removed), as the unseen-survey split."""

HAVE_TEST_ROWS = ("test rows only for the WVS countries in ../shared/data: test_1 645, "
                  "test_2 600, test_3 140, test_4 240, test_5 599, test_6 140, test_7 240 "
                  "(the paper's test splits are larger)")


def study_splits(data_dir: str | os.PathLike, *, unseen_survey: bool = True
                 ) -> dict[str, list[SurveyItem]]:
    """train, valid, test_1..test_7 from the WVS file, and ``goqa`` (Pew rows only)."""
    splits = build_paper_splits(load_wvs_unified(find_data_file(data_dir, "wvs")))
    if unseen_survey:
        splits[UNSEEN_SURVEY] = [item.replace(split=UNSEEN_SURVEY) for item in
                                 load_goqa(find_data_file(data_dir, "goqa"), drop_wvs=True)]
    return splits


def describe(items: Sequence[SurveyItem]) -> dict[str, int]:
    """Counts a person wants to see about a set of items."""
    return {"items": len(items),
            "populations": len({i.population for i in items}),
            "questions": len({(i.survey, i.question_id) for i in items}),
            "surveys": len({i.survey for i in items})}
