"""The option-reversal probe and order-averaged predictions, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from surveytune.data.items import make_item
from surveytune.methods.ordering import order_averaged, order_consistency, reversed_item


def test_reversed_item_reverses_options_and_shares():
    item = make_item(survey="s", question_id="q", question="Q?", options=["a", "b", "c"],
                     distribution=[0.5, 0.3, 0.2], population="P")
    twin = reversed_item(item)
    assert twin.options == ("c", "b", "a")
    assert twin.distribution == (0.2, 0.3, 0.5)
    assert twin.id == item.id and twin.population == "P"


def test_consistency_counts_same_top_option_and_similarity():
    given = [[0.7, 0.2, 0.1], [0.6, 0.4]]
    back = [[0.7, 0.2, 0.1], [0.4, 0.6]]  # the first identical, the second flips its top
    result = order_consistency(given, back)
    assert result["top_option_agreement"] == 0.5
    # 1-jsd of [.6,.4] vs [.4,.6] (natural log) by hand
    kl = 0.6 * np.log(0.6 / 0.5) + 0.4 * np.log(0.4 / 0.5)
    assert result["1-jsd"] == pytest.approx((1.0 + 1.0 - np.sqrt(kl)) / 2)


def test_consistency_refuses_mismatched_input():
    with pytest.raises(ValueError, match="equally long"):
        order_consistency([[0.5, 0.5]], [])
    with pytest.raises(ValueError, match="different lengths"):
        order_consistency([[0.5, 0.5]], [[0.2, 0.3, 0.5]])


def test_order_averaged_is_the_normalised_geometric_mean():
    averaged = order_averaged([[0.8, 0.2]], [[0.2, 0.8]])[0]
    np.testing.assert_allclose(averaged, [0.5, 0.5])
    averaged = order_averaged([[0.9, 0.1]], [[0.6, 0.4]])[0]
    expected = np.sqrt([0.9 * 0.6, 0.1 * 0.4])
    np.testing.assert_allclose(averaged, expected / expected.sum())
