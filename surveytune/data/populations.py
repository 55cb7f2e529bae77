"""The population vocabulary: one way to name the countries and subgroups of files and flags.

**Countries** are resolved by ``country_converter`` (any spelling it knows, ISO2 and ISO3
codes) to one canonical name each, the name that goes into the prompt. Where a country occurs
in the shared WVS/GOQA data the canonical name is the data's own (:data:`COUNTRY_NAMES`:
"United States", "Great Britain", "Turkey", "Taiwan ROC"; the WVS name where WVS and GOQA
differ), elsewhere the package's short name. GOQA's samples keep their qualifier: "India
(Non-national sample)" is India's non-national sample. The names the shared files use are
looked up in :data:`COUNTRY_NAMES` and :data:`COUNTRY_ALIASES` first, so loading them never
builds the converter (it imports pandas: about 0.4 s).

**Subgroups** are ``"ATTRIBUTE: group"`` with the attributes and groups of SubPOP's GSS 2022
file (:data:`SUBGROUPS`), named in prompts by :func:`subgroup_phrase`.

Files keep their population strings as written; :func:`resolve_population` checks them (and
gives flags and the Python API their canonical names).
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

from surveytune.data.items import DataError, DataWarning
from surveytune.data.regions import _converter

COUNTRY_NAMES = {
    "AGO": "Angola", "ALB": "Albania", "AND": "Andorra", "ARG": "Argentina", "ARM": "Armenia",
    "AUS": "Australia", "AUT": "Austria", "AZE": "Azerbaijan", "BEL": "Belgium",
    "BFA": "Burkina Faso", "BGD": "Bangladesh", "BGR": "Bulgaria", "BIH": "Bosnia Herzegovina",
    "BLR": "Belarus", "BOL": "Bolivia", "BRA": "Brazil", "CAN": "Canada", "CHE": "Switzerland",
    "CHL": "Chile", "CHN": "China", "CIV": "Ivory Coast", "COL": "Colombia", "CYP": "Cyprus",
    "CZE": "Czechia", "DEU": "Germany", "DNK": "Denmark", "ECU": "Ecuador", "EGY": "Egypt",
    "ESP": "Spain", "EST": "Estonia", "ETH": "Ethiopia", "FIN": "Finland", "FRA": "France",
    "GBR": "Great Britain", "GEO": "Georgia", "GHA": "Ghana", "GRC": "Greece",
    "GTM": "Guatemala", "HKG": "Hong Kong SAR", "HND": "Honduras", "HRV": "Croatia",
    "HUN": "Hungary", "IDN": "Indonesia", "IND": "India", "IRN": "Iran", "IRQ": "Iraq",
    "ISL": "Iceland", "ISR": "Israel", "ITA": "Italy", "JOR": "Jordan", "JPN": "Japan",
    "KAZ": "Kazakhstan", "KEN": "Kenya", "KGZ": "Kyrgyzstan", "KOR": "South Korea",
    "KWT": "Kuwait", "LBN": "Lebanon", "LBY": "Libya", "LTU": "Lithuania", "LVA": "Latvia",
    "MAC": "Macao SAR", "MAR": "Morocco", "MDV": "Maldives", "MEX": "Mexico",
    "MKD": "North Macedonia", "MLI": "Mali", "MMR": "Myanmar", "MNE": "Montenegro",
    "MNG": "Mongolia", "MYS": "Malaysia", "NGA": "Nigeria", "NIC": "Nicaragua",
    "NLD": "Netherlands", "NOR": "Norway", "NZL": "New Zealand", "PAK": "Pakistan",
    "PER": "Peru", "PHL": "Philippines", "POL": "Poland", "PRI": "Puerto Rico",
    "PRT": "Portugal", "PSE": "Palest. ter.", "ROU": "Romania", "RUS": "Russia",
    "SEN": "Senegal", "SGP": "Singapore", "SLV": "El Salvador", "SRB": "Serbia",
    "SVK": "Slovakia", "SVN": "Slovenia", "SWE": "Sweden", "THA": "Thailand", "TJK": "Tajikistan",
    "TUN": "Tunisia", "TUR": "Turkey", "TWN": "Taiwan ROC", "TZA": "Tanzania", "UGA": "Uganda",
    "UKR": "Ukraine", "URY": "Uruguay", "USA": "United States", "UZB": "Uzbekistan",
    "VEN": "Venezuela", "VNM": "Vietnam", "ZAF": "S. Africa", "ZWE": "Zimbabwe",
    "GB-NIR": "Northern Ireland",  # a WVS/EVS sample of its own; country_converter lacks it
}
"""Canonical names by ISO3 code: every country of the shared WVS, paper and GOQA files."""

COUNTRY_ALIASES = {"Britain": "GBR", "Czech Rep.": "CZE", "Macau SAR": "MAC",
                   "S. Korea": "KOR", "Taiwan": "TWN"}
"""The other names the shared files use for a country of :data:`COUNTRY_NAMES`."""

_SAMPLE = re.compile(r"(.+?) \(((?:Non-national|Current national|Old national) sample)\)")
"""GOQA's samples of a country: "India (Non-national sample)"."""

SUBGROUPS = {
    "CREGION": ("Northeast", "South"),
    "EDUCATION": ("College graduate/some postgrad", "Less than high school"),
    "INCOME": ("$100,000 or more", "Less than $30,000"),
    "POLIDEOLOGY": ("Conservative", "Liberal", "Moderate"),
    "POLPARTY": ("Democrat", "Republican"),
    "RACE": ("Asian", "Black", "Hispanic", "White"),
    "RELIG": ("Atheist", "Hindu", "Jewish", "Muslim", "Protestant"),
    "SEX": ("Female", "Male"),
}
"""The 22 US subgroups of SubPOP's GSS 2022 file, by attribute: ``"POLPARTY: Democrat"``."""

# Our wording, one template per attribute of SubPOP's GSS file. SubPOP's own persona prompts
# (``steering_prompts.json``: "Answer the following question as if you currently resided in
# the ...") are second-person instructions; these phrases instead name the person the paper's
# question asks about. ``{group}`` is the group name, reworded by SUBGROUP_WORDS when the
# data's name does not read naturally in a sentence.
SUBGROUP_TEMPLATES = {
    "CREGION": "someone who lives in the {group} of the United States",
    "EDUCATION": "someone in the United States {group}",
    "INCOME": "someone in the United States with a household income of {group} a year",
    "POLIDEOLOGY": "{group} in the United States",
    "POLPARTY": "{group} in the United States",
    "RACE": "{group} in the United States",
    "RELIG": "{group} in the United States",
    "SEX": "{group} in the United States",
    "AGE": "someone in the United States aged {group}",
}
SUBGROUP_WORDS = {
    ("EDUCATION", "College graduate/some postgrad"):
        "with a college degree (some with postgraduate study)",
    ("EDUCATION", "Less than high school"): "who did not finish high school",
    ("INCOME", "$100,000 or more"): "$100,000 or more",
    ("INCOME", "Less than $30,000"): "less than $30,000",
    ("POLIDEOLOGY", "Liberal"): "a liberal", ("POLIDEOLOGY", "Conservative"): "a conservative",
    ("POLIDEOLOGY", "Moderate"): "a political moderate",
    ("POLPARTY", "Democrat"): "a Democrat", ("POLPARTY", "Republican"): "a Republican",
    ("RACE", "Black"): "a Black person", ("RACE", "White"): "a White person",
    ("RACE", "Asian"): "an Asian person", ("RACE", "Hispanic"): "a Hispanic person",
    ("RELIG", "Protestant"): "a Protestant", ("RELIG", "Jewish"): "a Jewish person",
    ("RELIG", "Hindu"): "a Hindu", ("RELIG", "Atheist"): "an atheist",
    ("RELIG", "Muslim"): "a Muslim",
    ("SEX", "Male"): "a man", ("SEX", "Female"): "a woman",
}
SUBGROUP_FALLBACK = "someone in the United States whose {attribute} is {group}"
"""For an attribute without a template: its name in lower case, the group as written."""


def split_subgroup(population: str) -> tuple[str, str]:
    """``"POLPARTY: Democrat"`` -> ``("POLPARTY", "Democrat")``; ``("", population)`` when the
    name has no ``"ATTRIBUTE: "`` prefix."""
    attribute, sep, group = population.partition(": ")
    return (attribute, group) if sep and attribute.isupper() else ("", population)


def subgroup_phrase(population: str) -> str:
    """The phrase naming a subgroup in a prompt, e.g. "a Democrat in the United States"."""
    attribute, group = split_subgroup(population)
    words = SUBGROUP_WORDS.get((attribute, group), group)
    if attribute in SUBGROUP_TEMPLATES:
        return SUBGROUP_TEMPLATES[attribute].format(group=words)
    return SUBGROUP_FALLBACK.format(attribute=attribute.lower() or "group", group=group)


@dataclass(frozen=True)
class Population:
    """A resolved population: its canonical name, its kind and the phrase a prompt names it by.
    ``known`` is False for a name outside the vocabulary that was allowed as written."""

    name: str
    kind: str
    phrase: str
    known: bool = True


_NAME_CODES = {**{name: code for code, name in COUNTRY_NAMES.items()}, **COUNTRY_ALIASES}
_NOT_FOUND = "\x00unknown"


@lru_cache(maxsize=4096)
def _country(name: str) -> str | None:
    """The canonical name of a country name or code, or None when it names no country."""
    sample = _SAMPLE.fullmatch(name)
    if sample:
        base = _country(sample.group(1))
        return None if base is None else f"{base} ({sample.group(2)})"
    code = _NAME_CODES.get(name)
    if code is None:
        converter = _converter()
        code = converter.convert(name, to="ISO3", not_found=_NOT_FOUND)
        if not isinstance(code, str) or code == _NOT_FOUND:
            return None  # unknown, or ambiguous (the converter returns a list)
        if code not in COUNTRY_NAMES:
            return converter.convert(code, src="ISO3", to="name_short")
    return COUNTRY_NAMES[code]


@lru_cache(maxsize=1)
def _suggestion_names() -> dict[str, str]:
    """Every name a suggestion may match (lower case) -> the canonical name to suggest."""
    table = _converter().data
    names: dict[str, str] = {}
    for column in ("name_short", "name_official", "ISO2", "ISO3"):
        for value, code, short in zip(table[column], table["ISO3"], table["name_short"]):
            if isinstance(value, str) and value:
                names.setdefault(value.lower(), COUNTRY_NAMES.get(code, short))
    for name, code in _NAME_CODES.items():
        names[name.lower()] = COUNTRY_NAMES[code]
    for attribute, groups in SUBGROUPS.items():
        for group in groups:
            names[f"{attribute}: {group}".lower()] = f"{attribute}: {group}"
    return names


def _did_you_mean(name: str) -> str:
    names = _suggestion_names()
    matches = difflib.get_close_matches(name.lower(), list(names), n=6, cutoff=0.75)
    close = list(dict.fromkeys(names[m] for m in matches))[:3]
    if not close:
        return ""
    quoted = [repr(c) for c in close]
    return "; did you mean " + (quoted[0] if len(quoted) == 1 else
                                f"{', '.join(quoted[:-1])} or {quoted[-1]}") + "?"


def _unknown(name: str) -> str:
    """Why ``name`` is refused: the nearest known names, or the known groups of its attribute."""
    message = f"unknown population {name!r}"
    attribute, group = split_subgroup(name)
    if attribute in SUBGROUPS:
        known = f"known groups of {attribute}: {', '.join(SUBGROUPS[attribute])}"
        close = _did_you_mean(name)
        return f"{message}{close} {known[0].upper()}{known[1:]}" if close else f"{message}; {known}"
    if attribute:
        return f"{message}; known subgroup attributes: {', '.join(SUBGROUPS)}"
    return message + (_did_you_mean(name) or " (no known country or subgroup is close)")


class UnknownPopulation(DataError):
    """A population name outside the vocabulary (a known name of the wrong kind is a plain
    :class:`DataError`)."""


def resolve_population(name: str, *, kind: str | None = None,
                       allow_unknown: bool = False) -> Population:
    """``name`` as the vocabulary knows it: its canonical name, kind and prompt phrase.

    ``kind`` ("country" or "subgroup") is the kind it must have (default: whichever it is).
    An unknown name raises :class:`UnknownPopulation` with the nearest known names; with
    ``allow_unknown`` it is accepted as written (of ``kind``, else a subgroup when it reads
    "ATTRIBUTE: group", else a country) with a :class:`DataWarning` naming it. A known name of
    the other kind raises either way.
    """
    text = name.strip()
    if not text:
        raise DataError("missing or empty")
    attribute, group = split_subgroup(text)
    found: Population | None = None
    if group in SUBGROUPS.get(attribute, ()):
        found = Population(text, "subgroup", subgroup_phrase(text))
    elif not attribute and (country := _country(text)) is not None:
        found = Population(country, "country", country)
    if found is not None:
        if kind is not None and found.kind != kind:
            raise DataError(f"{name!r} is a {found.kind}, not a {kind}")
        return found
    if not allow_unknown:
        raise UnknownPopulation(_unknown(text))
    warnings.warn(f"unknown population {text!r} simulated as written", DataWarning,
                  stacklevel=2)
    kind = kind or ("subgroup" if attribute else "country")
    return Population(text, kind, subgroup_phrase(text) if kind == "subgroup" else text,
                      known=False)
