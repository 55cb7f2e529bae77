"""What differs between studies, as one object: :class:`StudySpec`.

The runner (:mod:`surveytune.studies.runner`) and the command line know no study by name:
they look its spec up in :mod:`surveytune.studies.registry` and call what it holds. A study
is one module defining ``SPEC`` (see :mod:`surveytune.studies.wvs` and
:mod:`surveytune.studies.gss`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surveytune.data.items import DataError, SurveyItem
from surveytune.data.records import PredictionRecord
from surveytune.data.split_names import SPLIT_TABLE
from surveytune.report.observed import observed_sections
from surveytune.report.sections import SectionHook, StudySections, no_sections, study_section
from surveytune.studies.budgets import Budget
from surveytune.studies.observed_rows import ObservedDesign

Splits = dict[str, list[SurveyItem]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class ScoredSplit:
    """One scored split as the results see it: its evaluated items, every baseline's
    predictions of them (registry order) and each model's prediction records (one per item,
    in the items' order)."""

    name: str
    items: list[SurveyItem]
    baselines: dict[str, list]
    models: dict[str, list[PredictionRecord]]


def _no_extra_results(scored: Sequence[ScoredSplit]) -> dict[str, Any]:  # noqa: ARG001
    return {}


@dataclass(frozen=True)
class StudySpec:
    """One study.

    ``data_files(budget)``: the keys of :func:`surveytune.data.loaders.find_data_file` the
    budget needs (checked before a run starts). ``build_splits(data_dir, budget, log)``: every
    split the budget scores, and ``train`` and ``valid``. ``splits``: the split names it
    produces with its words for each (:func:`split_table`). ``paired_splits``: a split scored
    on the items that match another's sample (split -> the other). ``note(splits)``: what the
    data hold, for results.json. ``extra_results(scored)``: its own fields of
    :class:`~surveytune.data.records.RunResults`. ``opening_sections``/``closing_sections``:
    its report sections after the findings (default: the note) and at the end.
    ``observed``: the splits scored again with k observed cells (split -> design,
    :mod:`surveytune.studies.observed_rows`).
    """

    name: str
    description: str
    budgets: Mapping[str, Budget]
    data_files: Callable[[Budget], tuple[str, ...]]
    build_splits: Callable[[Path, Budget, Log], Splits]
    splits: Mapping[str, str]
    note: Callable[[Splits], str]
    run_folder_prefix: str = ""
    paired_splits: Mapping[str, str] = field(default_factory=dict)
    extra_results: Callable[[Sequence[ScoredSplit]], dict[str, Any]] = _no_extra_results
    opening_sections: SectionHook = study_section
    closing_sections: SectionHook = no_sections
    observed: Mapping[str, ObservedDesign] = field(default_factory=dict)

    def budget(self, name: str) -> Budget:
        """A budget by name; an unknown one raises DataError naming the choices."""
        if name not in self.budgets:
            raise DataError(f"unknown budget {name!r}; choose one of {', '.join(self.budgets)}")
        return self.budgets[name]

    def run_folder(self, budget: Budget) -> Path:
        """The default run folder of a budget (``reproduce --out``'s default)."""
        return Path("runs") / f"{self.run_folder_prefix}{budget.name}"

    def report(self) -> StudySections:
        """What the study adds to its runs' report."""
        return StudySections(split_wording=self.splits, opening=self.opening_sections,
                             closing=self.closing_sections,
                             after_comparisons=observed_sections if self.observed
                             else no_sections)


def split_table(names: Sequence[str], wording: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """A study's split table: each of ``names`` with the study's ``wording`` for it, else
    :data:`~surveytune.data.split_names.SPLIT_TABLE`'s. A name outside that table raises, so
    every split a study produces is one ``make_item`` accepts."""
    wording = dict(wording or {})
    unknown = [name for name in (*names, *wording) if name not in SPLIT_TABLE]
    if unknown:
        raise ValueError(f"split {unknown[0]!r} is not in surveytune.data.split_names."
                         "SPLIT_TABLE; add it there first")
    return {name: wording.get(name, SPLIT_TABLE[name]) for name in names}


def pair_key(item: SurveyItem) -> tuple[str, str]:
    """What a paired split's item shares with its twin: (population, question_id)."""
    return (item.population, item.question_id)
