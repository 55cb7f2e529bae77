"""emd runs over an item's ordered scale only; off-scale options such as WVS code 0 "Hard to
say" (lettered first) do not count as its first point (issue 10.4)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import data_dir

from surveytune.data.items import DataError, DataWarning, make_item
from surveytune.data.loaders import (
    WVS_OFF_SCALE_CODE0,
    find_data_file,
    load_jsonl,
    load_wvs_unified,
)
from surveytune.methods.metrics import item_metrics, metrics_table
from surveytune.methods.prompts import build_prompt
from surveytune.training.losses import LOSSES, emd_loss, scale_mask

HUMAN = [0.2, 0.4, 0.4, 0.0]      # position 0 is "Hard to say"
PREDICTED = [0.6, 0.1, 0.1, 0.2]


def _item(dist, scale=None, population="A"):
    return make_item(survey="toy", question_id="q", question="Q?",
                     options=["Hard to say", "Agree", "Neutral", "Disagree"],
                     distribution=dist, population=population, scale_positions=scale)


def test_emd_on_the_scale_by_hand():
    # On positions 1..3, renormalised: human [.5, .5, 0], predicted [.25, .25, .5].
    # CDFs .5, 1 vs .25, .5 -> (.25 + .5) / (3 - 1) = .375
    restricted = item_metrics(HUMAN, PREDICTED, scale_positions=(1, 2, 3))
    assert restricted["emd"] == pytest.approx(0.375)
    # Over every position: CDFs .2 .6 1 vs .6 .7 .8 -> (.4 + .1 + .2) / 3
    everything = item_metrics(HUMAN, PREDICTED)
    assert everything["emd"] == pytest.approx(0.7 / 3)
    # The other metrics compare every option, scale or not.
    for name in ("1-jsd", "js_divergence", "emd_paper", "tv", "acc"):
        assert restricted[name] == everything[name]
    # The off-scale share does not move emd at all.
    assert item_metrics([0.9, 0.05, 0.05, 0.0], PREDICTED, (1, 2, 3))["emd"] == pytest.approx(
        0.375)


def test_metrics_table_keeps_restricted_and_plain_items_apart():
    items = [_item(HUMAN, (1, 2, 3), "A"), _item(HUMAN, None, "B")]
    table = metrics_table(items, [PREDICTED, PREDICTED])
    assert table["emd"].tolist() == pytest.approx([0.375, 0.7 / 3])


def test_a_distribution_without_mass_on_the_scale_is_refused():
    with pytest.raises(ValueError, match="no mass on the ordered scale"):
        metrics_table([_item(HUMAN, (1, 2, 3))], [[1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="no mass on the ordered scale"):
        item_metrics(HUMAN, [1.0, 0.0, 0.0, 0.0], (1, 2, 3))
    with pytest.raises(DataError, match="no mass"):
        _item([1.0, 0.0, 0.0, 0.0], (1, 2, 3))


@pytest.mark.parametrize("bad", [[1], [2, 1], [1, 1, 2], [0, 4], [-1, 2], "12", [0.5, 1]])
def test_bad_scale_positions_are_refused(bad):
    with pytest.raises(DataError, match="scale_positions"):
        _item(HUMAN, bad)
    if isinstance(bad, list) and all(isinstance(i, int) for i in bad):
        with pytest.raises(ValueError):
            item_metrics(HUMAN, PREDICTED, bad)


def test_scale_positions_round_trip_and_plain_records_do_not_change(tmp_path):
    restricted = _item(HUMAN, [1, 2, 3])
    assert restricted.scale_positions == (1, 2, 3)
    assert restricted.ordered_positions == (1, 2, 3)
    full = _item(HUMAN, [0, 1, 2, 3])  # every option: the same as no restriction
    assert full.scale_positions is None and full.ordered_positions == (0, 1, 2, 3)
    assert "scale_positions" not in full.to_dict()
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i.to_dict()) + "\n"
                            for i in (restricted, full.replace(id="toy:q:B"))))
    assert [i.scale_positions for i in load_jsonl(path)] == [(1, 2, 3), None]


def test_emd_loss_agrees_with_the_metric():
    human = torch.tensor([HUMAN, [0.5, 0.5, 0.0, 0.0]])
    pred = torch.tensor([PREDICTED, [0.25, 0.75, 1.0, 1.0]])
    log_pred = pred.log()
    log_pred[1, 2:] = float("-inf")  # the second row has 2 options
    mask = scale_mask([(1, 2, 3), None], [4, 2], 4)
    assert mask.tolist() == [[False, True, True, True], [True, True, False, False]]
    expected = (0.375 + item_metrics([0.5, 0.5], [0.25, 0.75])["emd"]) / 2
    assert float(emd_loss(human, log_pred, mask)) == pytest.approx(expected)
    assert scale_mask([None, None], [4, 2], 4) is None
    # Without a mask: every option, as before ((.7/3) and .25, averaged).
    assert float(emd_loss(human, log_pred)) == pytest.approx((0.7 / 3 + 0.25) / 2)
    # The other losses ignore the mask.
    for name in ("kl", "js", "ce"):
        assert float(LOSSES[name](human, log_pred, mask)) == float(LOSSES[name](human, log_pred))
    logits = torch.tensor([[0.1, 0.2, 0.3, 0.4]], requires_grad=True)
    emd_loss(torch.tensor([HUMAN]), logits.log_softmax(-1), mask[:1]).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_wvs_loader_keeps_option_order_and_marks_the_scale(tmp_path):
    row = {"country": "Chile", "qid": 119, "codebook_label": "Degree of agreement",
           "question_text": "Women are less corrupt than men.",
           "options": [{"code": 0, "letter": "X", "label": "Hard to say"},
                       {"code": 1, "letter": "A", "label": "Strongly agree"},
                       {"code": 2, "letter": "B", "label": "Agree"},
                       {"code": 3, "letter": "C", "label": "Disagree"},
                       {"code": 4, "letter": "D", "label": "Strongly disagree"}],
           "dist": {"X": 0.1, "A": 0.2, "B": 0.3, "C": 0.3, "D": 0.1}}
    disagree = dict(row, qid=122, options=[{"code": 0, "letter": "X", "label": "Disagree"},
                                           {"code": 1, "letter": "A", "label": "Hard to say"},
                                           {"code": 2, "letter": "B", "label": "Agree"}],
                    dist={"X": 0.3, "A": 0.2, "B": 0.5})
    path = tmp_path / "wvs.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(disagree) + "\n")
    q119, q122 = load_wvs_unified(path)
    assert q119.options[0] == "Hard to say" and q119.scale_positions == (1, 2, 3, 4)
    # Lettered by position: "Hard to say" is (A), as before (the paper writes it as X).
    assert "(A)Hard to say, (B)Strongly agree" in build_prompt(q119)
    assert q122.scale_positions is None  # code 0 "Disagree" is the scale's first point


def test_real_wvs_off_scale_code_0_matches_the_metadata():
    root = data_dir()
    if root is None:
        pytest.skip("no shared data directory")
    metadata = json.loads((root / "wvs7_codebook_worldvaluesbench" /
                           "question_metadata.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        items = load_wvs_unified(find_data_file(root, "wvs-unified"))
    rows = [json.loads(line) for line in
            find_data_file(root, "wvs-unified").read_text().splitlines() if line.strip()]
    code0 = {f"Q{r['qid']}": r["options"][0]["label"] for r in rows
             if r["options"][0]["code"] == 0}
    for qid, label in code0.items():
        scale_min = metadata.get(qid, {}).get("answer_scale_min")
        if scale_min is not None:  # the metadata puts code 0 on the scale iff its minimum is 0
            assert (label.strip().lower() in WVS_OFF_SCALE_CODE0) == (scale_min >= 1), qid
    restricted = {i.question_id for i in items if i.scale_positions is not None}
    assert restricted == {"Q119", *(f"Q{q}" for q in range(241, 250))}
    for item in items:
        if item.question_id in restricted:
            assert item.scale_positions == tuple(range(1, item.n_options))
            assert np.isclose(sum(item.distribution), 1.0)
