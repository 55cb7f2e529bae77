"""World regions of countries, from the maintained classification of ``country_converter``.

Used by the ``region-mean`` baseline and the region prior: a country's UN M49 sub-region
(e.g. "Eastern Asia") and its continent. Names that the package cannot map (subgroups such as
"Democrats", or spellings it does not know) get no region; callers fall back to the mean over
all training populations and say which names fell back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LEVELS = ("UNregion", "continent")
"""Region levels from finest to coarsest: UN M49 sub-region, then continent."""


@dataclass(frozen=True)
class Region:
    """Where a country lies: its UN M49 sub-region and its continent."""

    subregion: str
    continent: str

    def at(self, level: str) -> str:
        return self.subregion if level == "UNregion" else self.continent


@lru_cache(maxsize=1)
def _converter() -> Any:
    """A ``CountryConverter`` built from its bundled table.

    Built from a DataFrame read with ``keep_default_na=False``: with pandas 3 the package's own
    reader turns Namibia's ISO2 code "NA" into a missing value and its constructor fails.
    """
    import importlib.resources

    import country_converter
    import pandas as pd
    from pandas._libs.parsers import STR_NA_VALUES

    text_columns = ("name_short", "name_official", "regex", "ISO2", "ISO3", "continent",
                    "UNregion", "EXIO1", "EXIO2", "EXIO3", "WIOD")
    table = importlib.resources.files("country_converter") / "country_data.tsv"
    with table.open(encoding="utf-8") as handle:
        frame = pd.read_csv(handle, sep="\t", keep_default_na=False,
                            na_values=STR_NA_VALUES - {"NA"},
                            converters=dict.fromkeys(text_columns, str))
    # It logs one warning per unknown name; we report unmapped names ourselves.
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    return country_converter.CountryConverter(country_data=frame)


_UNKNOWN = "\x00unknown"


@lru_cache(maxsize=4096)
def region_of(country: str) -> Region | None:
    """The region of one country name, or None when it cannot be mapped."""
    converter = _converter()
    # not_found=None would return the name itself; a sentinel tells "unknown" apart.
    subregion = converter.convert(country, to="UNregion", not_found=_UNKNOWN)
    continent = converter.convert(country, to="continent", not_found=_UNKNOWN)
    if not isinstance(subregion, str) or not isinstance(continent, str):
        return None  # ambiguous: the converter returns a list
    if _UNKNOWN in (subregion, continent):
        return None
    return Region(subregion, continent)


def regions(populations: Iterable[str]) -> dict[str, Region | None]:
    """The region of each distinct population name (None where unmapped)."""
    return {name: region_of(name) for name in sorted(set(populations))}
