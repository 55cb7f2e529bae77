"""Questionnaire files (questions without answers) and the long-form prediction table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from surveytune.data.items import DataError
from surveytune.data.questionnaire import items_for, load_questionnaire, table_rows, write_table


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_questionnaire_keeps_file_order(tmp_path):
    path = _write(tmp_path, "q.csv", "question_id,question,option\n"
                  "god,How important is God in your life?,Very\n"
                  "god,How important is God in your life?,Not at all\n"
                  "trust,Trust?,Yes\ntrust,Trust?,No\ntrust,Trust?,Don't know\n")
    god, trust = load_questionnaire(path)
    assert (god.survey, god.question_id, god.options) == ("q", "god", ("Very", "Not at all"))
    assert trust.options == ("Yes", "No", "Don't know") and trust.source.line == 4


def test_jsonl_questionnaire_and_a_survey_file_read_as_its_questions(tmp_path):
    path = _write(tmp_path, "q.jsonl", json.dumps(
        {"question_id": "q1", "question": "Q?", "options": ["a", "b"], "survey": "wvs"}) + "\n")
    (question,) = load_questionnaire(path)
    assert question.survey == "wvs" and question.options == ("a", "b")
    survey = _write(tmp_path, "s.csv", "question_id,question,population,option,share\n"
                    "q1,Q?,Kenya,a,60\nq1,Q?,Kenya,b,40\nq1,Q?,Chad,a,50\nq1,Q?,Chad,b,50\n")
    (from_survey,) = load_questionnaire(survey)
    assert from_survey.question_id == "q1" and from_survey.options == ("a", "b")


@pytest.mark.parametrize(("name", "text", "where"), [
    ("q.csv", "question_id,question\nq1,Q?\n", "q.csv:1: field 'option': missing column"),
    ("q.csv", "question_id,question,option\nq1,Q?,a\nq1,Q?,a\n", "q.csv:3: field 'option': "
     "option 'a' repeated"),
    ("q.csv", "question_id,question,option\nq1,Q?,a\n", "q.csv:2: field 'options'"),
    ("q.csv", "question_id,question,option\nq1,Q?,a\nq1,Other?,b\n", "q.csv:3: field "
     "'question': differs from line 2"),
    ("q.jsonl", '{"question_id": "q1", "question": "Q?"}\n', "q.jsonl:1: field 'options': "
     "missing"),
    ("q.jsonl", '{"question_id": "q1", "question": "Q?", "options": ["a", "b"]}\n'
     '{"question_id": "q1", "question": "Q?", "options": ["a", "b"]}\n',
     "q.jsonl:2: field 'question_id': question_id 'q1' repeated (first at line 1)"),
    ("q.txt", "x", "a questionnaire is .csv or .jsonl"),
    ("q.csv", "question_id,question,option,ordinal\nq1,Q?,a,maybe\nq1,Q?,b,maybe\n",
     "q.csv:2: field 'ordinal': expected true or false, got 'maybe'"),
    ("q.jsonl", '{"question_id": "q1", "question": "Q?", "options": ["a", "b"], '
     '"ordinal": "false"}\n', "q.jsonl:1: field 'ordinal': expected true or false"),
])
def test_bad_questionnaires_are_refused_at_their_line(tmp_path, name, text, where):
    with pytest.raises(DataError) as caught:
        load_questionnaire(_write(tmp_path, name, text))
    assert where in str(caught.value) and "\n" not in str(caught.value)


def test_items_for_every_population_and_the_table_round_trip(tmp_path):
    path = _write(tmp_path, "q.csv", "question_id,question,option\nq1,Q?,a\nq1,Q?,b\n")
    items = items_for(load_questionnaire(path), [("Kenya", "country"),
                                                 ("POLPARTY: Democrat", "subgroup")])
    assert [(i.population, i.population_kind) for i in items] == [
        ("Kenya", "country"), ("POLPARTY: Democrat", "subgroup")]
    frame = pd.DataFrame(table_rows(items, [[0.25, 0.75], [0.6, 0.4]], method="zero-shot",
                                    model="m"))
    assert list(frame["letter"]) == ["A", "B", "A", "B"] and frame["share"].sum() == 2
    for suffix in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"p{suffix}"
        write_table(frame, out)
        back = (pd.read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True)
                if suffix == ".jsonl" else pd.read_parquet(out))
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    with pytest.raises(DataError, match="p.xlsx: the table is written as .csv, .jsonl"):
        write_table(frame, tmp_path / "p.xlsx")
