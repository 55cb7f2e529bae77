"""The population vocabulary: countries through country_converter with the shared data's names,
GSS subgroups as "ATTRIBUTE: group"; refusals with the nearest names, in flags and files."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import REPO, data_dir, run_cli

from surveytune.data.items import DataError, DataWarning
from surveytune.data.loaders import load_items
from surveytune.data.populations import (
    COUNTRY_ALIASES,
    COUNTRY_NAMES,
    SUBGROUPS,
    Population,
    UnknownPopulation,
    resolve_population,
)
from surveytune.data.regions import _converter
from surveytune.methods.prompts import build_prompt

FIXTURES = REPO / "tests" / "fixtures"
ROW = {"question_id": "q1", "question": "Trust?", "options": ["Yes", "No"],
       "distribution": [0.6, 0.4]}


def refusal(name: str, **kwargs) -> str:
    with pytest.raises(UnknownPopulation) as exc:
        resolve_population(name, **kwargs)
    return exc.value.message



def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


# --------------------------------------------------------------------------- resolving names

@pytest.mark.parametrize("typo, meant", [("Untied States", "United States"),
                                         ("Germnay", "Germany"),
                                         ("POLPARTY:Democrat", "POLPARTY: Democrat")])
def test_a_misspelt_name_is_refused_with_the_nearest_known_name(typo, meant):
    assert refusal(typo) == f"unknown population {typo!r}; did you mean {meant!r}?"


@pytest.mark.parametrize("name", ["DE", "DEU", "de", "Germany", "Federal Republic of Germany"])
def test_iso_codes_and_spellings_give_the_canonical_name(name):
    assert resolve_population(name) == Population("Germany", "country", "Germany")


@pytest.mark.parametrize("name, canonical", [
    ("USA", "United States"), ("United States of America", "United States"),
    ("UK", "Great Britain"), ("Britain", "Great Britain"), ("Turkey", "Turkey"),
    ("Macau", "Macao SAR"), ("S. Korea", "South Korea"),
    ("India (Non-national sample)", "India (Non-national sample)"),
    ("Northern Ireland", "Northern Ireland"), ("Chad", "Chad"),
])
def test_the_canonical_name_is_the_shared_datas_own(name, canonical):
    assert resolve_population(f"  {name} ").name == canonical


def test_a_gss_subgroup_is_a_subgroup_with_its_phrase():
    found = resolve_population("POLPARTY: Democrat")
    assert found == Population("POLPARTY: Democrat", "subgroup", "a Democrat in the United States")
    assert sum(len(groups) for groups in SUBGROUPS.values()) == 22


def test_an_unknown_group_is_refused_with_the_groups_of_its_attribute():
    assert refusal("POLPARTY: Green") == ("unknown population 'POLPARTY: Green'; known groups "
                                          "of POLPARTY: Democrat, Republican")
    assert "known subgroup attributes: CREGION, EDUCATION" in refusal("AGE: 18-29")


def test_an_unknown_name_is_refused_or_allowed_with_a_warning():
    assert refusal("Atlantis") == ("unknown population 'Atlantis' (no known country or "
                                   "subgroup is close)")
    with pytest.warns(DataWarning, match="unknown population 'Atlantis' simulated as written"):
        found = resolve_population("Atlantis", allow_unknown=True)
    assert found == Population("Atlantis", "country", "Atlantis", known=False)
    with pytest.warns(DataWarning, match="'AGE: 18-29'"):
        found = resolve_population("AGE: 18-29", allow_unknown=True)
    assert found == Population("AGE: 18-29", "subgroup", "someone in the United States aged "
                               "18-29", known=False)


def test_a_known_name_of_the_other_kind_is_refused_even_when_unknown_ones_are_allowed():
    for name, kind, other in (("France", "subgroup", "country"),
                              ("SEX: Female", "country", "subgroup")):
        with pytest.raises(DataError, match=f"'{name}' is a {other}, not a {kind}"):
            resolve_population(name, kind=kind, allow_unknown=True)


def test_the_canonical_names_are_the_names_country_converter_gives_their_codes():
    converter = _converter()
    ours = {"GB-NIR", "PSE"}  # Northern Ireland and GOQA's "Palest. ter.": unknown to it
    for code, name in COUNTRY_NAMES.items():
        if code not in ours:
            assert converter.convert(name, to="ISO3") == code, name
    for name, code in COUNTRY_ALIASES.items():
        assert converter.convert(name, to="ISO3") == code, name
    assert resolve_population("Palestine").name == "Palest. ter."


# --------------------------------------------------------------------------- files

def test_a_file_refuses_an_unknown_population_at_its_line_and_field(tmp_path):
    path = tmp_path / "my.jsonl"
    write_jsonl(path, [ROW | {"population": "France"}, ROW | {"population": "Untied States"}])
    with pytest.raises(DataError) as exc:
        load_items(path)
    assert str(exc.value) == (
        f"{path}:2: field 'population': unknown population 'Untied States'; did you mean "
        "'United States'? (population_kind \"custom\" or --allow-unknown-populations accepts it)")
    with pytest.warns(DataWarning, match="1 unknown population.*'Untied States'"):
        items = load_items(path, allow_unknown_populations=True)
    assert [i.population for i in items] == ["France", "Untied States"]


def test_custom_populations_are_kept_as_written(tmp_path):
    path = tmp_path / "my.csv"
    path.write_text("question_id,question,population,population_kind,option,share\n"
                    "q1,Trust?,Atlantis,custom,Yes,60\nq1,Trust?,Atlantis,custom,No,40\n"
                    "q1,Trust?,SEX: Female,subgroup,Yes,50\nq1,Trust?,SEX: Female,subgroup,No,50\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items = load_items(path)
    assert [(i.population, i.population_kind) for i in items] == [
        ("Atlantis", "custom"), ("SEX: Female", "subgroup")]
    assert build_prompt(items[0]).startswith("How would someone from Atlantis answer")


def test_a_file_refuses_a_population_of_the_other_kind(tmp_path):
    path = tmp_path / "my.jsonl"
    write_jsonl(path, [ROW | {"population": "POLPARTY: Democrat"}])
    with pytest.raises(DataError, match="my.jsonl:1: field 'population': 'POLPARTY: Democrat' "
                                        "is a subgroup, not a country; fix its population_kind"):
        load_items(path, allow_unknown_populations=True)


def test_a_shared_format_names_its_own_field(tmp_path):
    row = json.loads((FIXTURES / "loaders_wvs_unified.jsonl").read_text().splitlines()[0])
    path = tmp_path / "wvs.jsonl"
    write_jsonl(path, [row | {"country": "Atlantis"}])
    with pytest.raises(DataError, match=r"wvs.jsonl:1: field 'country': unknown population "
                                        r"'Atlantis' \(no known country or subgroup is close\) "
                                        r"\(--allow-unknown-populations accepts it\)"):
        load_items(path, format="wvs-unified")


def test_data_check_refuses_in_one_line_or_allows_with_the_flag(monkeypatch, capsys, tmp_path):
    path = tmp_path / "my.jsonl"
    write_jsonl(path, [ROW | {"population": "Atlantis"}])
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {path}:1: field 'population': unknown population 'Atlantis'")
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", path,
                             "--allow-unknown-populations")
    assert code == 0 and ": OK — 1 items" in out
    assert "warning: " in err and "'Atlantis'" in err


@pytest.mark.skipif(data_dir() is None, reason="needs the shared data")
@pytest.mark.parametrize("name, field", [
    ("wvs7_unified/wvs7_country_distributions.jsonl", "country"),
    ("goqa_partial/goqa_union_question_country.jsonl", "country"),
    ("subpop_eval_gss/subpop_eval.jsonl", None),
    ("wvs7_simllm_paper/global_pew_test.json", None),
    ("wvs7_simllm_paper/sft_wvs_valid.json", None),
    ("wvs7_simllm_paper/sft_wvs_zh_valid.json", None),
    ("wvs7_simllm_paper/sft_wvs_debug_train.json", None),
    ("wvs7_simllm_paper/sft_wvs_debug_valid.json", None),
])
def test_every_shared_file_loads_with_its_population_strings_unchanged(name, field):
    path = data_dir() / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        items = load_items(path)
    if field is not None:  # the rows' own strings, byte for byte (GOQA drops its WVS rows)
        raw = {json.loads(line)[field] for line in path.read_text().splitlines()}
        assert {i.population for i in items} <= raw
        assert len({i.population for i in items}) > 50
    for population in {i.population for i in items}:
        canonical = resolve_population(population).name
        alias = population.split(" (")[0] in COUNTRY_ALIASES
        assert canonical == population or alias, population


# --------------------------------------------------------------------------- predict

def test_predict_refuses_an_unknown_population_in_one_line(monkeypatch, capsys):
    for flag in ("--population", "--country"):
        code, out, err = run_cli(monkeypatch, capsys, "predict", "--question", "Trust?",
                                 "--option", "Yes", "--option", "No", flag, "France",
                                 flag, "Untied States")
        assert code == 2 and out == ""
        assert err == ("error: --population: unknown population 'Untied States'; did you mean "
                       "'United States'? (--allow-unknown-populations simulates it anyway)\n")


def test_predict_asks_a_subgroup_with_the_subgroup_prompt(monkeypatch, capsys, tiny_model_dir):
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--question", "Trust?", "--option", "Yes", "--option", "No",
                             "--population", "POLPARTY: Democrat", "--country", "DE",
                             "--population", "Atlantis", "--allow-unknown-populations",
                             "--show-prompt")
    assert code == 0, err
    prompts = out.split("--- prompt of ")[1:]
    assert [p.split(" ---")[0] for p in prompts] == [
        "user:q:POLPARTY: Democrat", "user:q:Germany", "user:q:Atlantis"]
    assert "How would a Democrat in the United States answer" in prompts[0]
    assert "How would someone from Germany answer" in prompts[1]
    assert "'Atlantis'" in err
    assert "POLPARTY: Democrat" in out and "Germany" in out
    code, out, err = run_cli(monkeypatch, capsys, "predict", "--model", tiny_model_dir,
                             "--question", "Trust?", "--option", "Yes", "--option", "No",
                             "--population", "POLPARTY: Democrat", "--country", "DE", "--json")
    kinds = {(r["population"], r["population_kind"]) for r in json.loads(out)}
    assert kinds == {("POLPARTY: Democrat", "subgroup"), ("Germany", "country")}
