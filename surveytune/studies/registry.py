"""The studies by name: adding a study is one module defining ``SPEC`` (a
:class:`~surveytune.studies.spec.StudySpec`) and one line in :data:`STUDIES`.

Modules are imported on first use, so that choosing a study loads only that one.
"""

from __future__ import annotations

from importlib import import_module

from surveytune.data.items import DataError
from surveytune.studies.spec import StudySpec

STUDIES = {
    "wvs": "surveytune.studies.wvs",  # the paper's WVS countries
    "gss": "surveytune.studies.gss",  # SubPOP's GSS 2022 US subgroups
}
"""Study name -> the module holding its ``SPEC``; ``reproduce --study`` offers these."""

DEFAULT_STUDY = "wvs"
"""The study of ``reproduce`` without ``--study``, and of results.json files that name none."""


def study_names() -> tuple[str, ...]:
    return tuple(STUDIES)


def get_study(name: str) -> StudySpec:
    """The spec of a registered study ("" is :data:`DEFAULT_STUDY`); an unknown name raises
    DataError naming the choices."""
    name = name or DEFAULT_STUDY
    if name not in STUDIES:
        raise DataError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    return import_module(STUDIES[name]).SPEC
