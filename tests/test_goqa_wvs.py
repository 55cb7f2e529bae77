"""GlobalOpinionQA as an unseen survey holds no WVS question (issue 10.3)."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import data_dir

from surveytune.data.items import DataWarning
from surveytune.data.loaders import find_data_file, is_wvs_missing_label, load_goqa


@pytest.mark.parametrize("label", ["No answer", "No Answer", '"Dont know"', "Don't know",
                                   "Don´t know", "Missing", "Missing; Not available",
                                   "Other missing; Multiple answers Mail (EVS)",
                                   "No answer/refused", "No answer/ refused",
                                   "INAP: No internet/no social media", "Not asked"])
def test_wvs_missing_code_labels(label):
    assert is_wvs_missing_label(label)


@pytest.mark.parametrize("label", ["DK/Refused", "Don't know/Refused", '"Dont know/Refused"',
                                   "I do not know anyone", "Not mentioned", "None at all",
                                   "Not at all", "Refused to answer the question entirely"])
def test_pew_and_substantive_labels_are_kept(label):
    assert not is_wvs_missing_label(label)


def test_rows_labelled_pew_with_wvs_options_are_dropped(tmp_path):
    rows = [
        {"question": "Confidence: the police?", "country": "Egypt",
         "options": ["A great deal", "Quite a lot", "Not very much", "None at all",
                     "Don't know", "No answer"],
         "dist": [0.5, 0.2, 0.1, 0.1, 0.05, 0.05], "survey_guess": "GAS(Pew)"},
        {"question": "Is the economy good?", "country": "Egypt", "options": ["Good", "Bad",
         "DK/Refused"], "dist": [0.5, 0.4, 0.1], "survey_guess": "GAS(Pew)"},
        {"question": "Is God important?", "country": "Egypt", "options": ["Yes", "No"],
         "dist": [0.9, 0.1], "survey_guess": "WVS"},
    ]
    path = tmp_path / "goqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [i.question for i in load_goqa(path)] == ["Is the economy good?"]
    assert len(load_goqa(path, drop_wvs=False)) == 3


def test_real_goqa_unseen_survey_holds_no_wvs_question():
    root = data_dir()
    if root is None:
        pytest.skip("no shared data directory")
    path = find_data_file(root, "goqa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        kept = load_goqa(path)
        everything = load_goqa(path, drop_wvs=False)
    assert not [i.id for i in kept if any(is_wvs_missing_label(o) for o in i.options)]
    # 10,087 items (1,728 questions) kept before: 79 of them (47 questions) were WVS
    # questions labelled "GAS(Pew)", e.g. the confidence-in-organisations battery.
    assert (len(kept), len({i.question_id for i in kept})) == (10008, 1681)
    dropped_pew = {i.question_id for i in everything
                   if any(is_wvs_missing_label(o) for o in i.options)}
    assert not dropped_pew & {i.question_id for i in kept}
    confidence = [i for i in everything if i.population in ("Egypt", "Jordan", "Morocco",
                                                             "Tunisia")
                  and i.question.startswith("I am going to name a number of organizations")]
    assert confidence and not {i.id for i in confidence} & {i.id for i in kept}
