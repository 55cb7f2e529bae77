"""Option order: the reversal probe and order-averaged prediction.

A model that reads the options should give the same shares whatever order they are listed
in. The probe scores every item twice, as given and with its options reversed (so the letters
move: the first option becomes the last letter), maps the second prediction back to the
original order, and compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon

from surveytune.data.items import SurveyItem


def reversed_item(item: SurveyItem) -> SurveyItem:
    """The same item with its options (and the human shares) in reverse order."""
    return item.replace(options=item.options[::-1], distribution=item.distribution[::-1])


def order_consistency(as_given: Sequence[Sequence[float]],
                      reversed_back: Sequence[Sequence[float]]) -> dict[str, float]:
    """How much predictions depend on option order.

    ``as_given[i]`` is the prediction for item i, ``reversed_back[i]`` the prediction for its
    reversed twin mapped back to the original order (``prediction[::-1]``). Returns
    ``top_option_agreement`` (the share of items whose most likely option is the same) and
    ``1-jsd`` (the mean 1 - Jensen-Shannon distance between the two predictions; 1 means
    order does not matter at all).
    """
    if len(as_given) != len(reversed_back) or not as_given:
        raise ValueError(f"need two equally long, non-empty lists of predictions, got "
                         f"{len(as_given)} and {len(reversed_back)}")
    same_top, similarity = [], []
    for p, q in zip(as_given, reversed_back):
        p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
        if p.shape != q.shape:
            raise ValueError(f"predictions of different lengths: {p.size} and {q.size}")
        same_top.append(int(np.argmax(p) == np.argmax(q)))
        with np.errstate(invalid="ignore"):  # identical rows: distance 0, not NaN
            similarity.append(1.0 - float(np.nan_to_num(jensenshannon(p, q), nan=0.0)))
    return {"top_option_agreement": float(np.mean(same_top)), "1-jsd": float(np.mean(similarity))}


def order_averaged(as_given: Sequence[Sequence[float]],
                   reversed_back: Sequence[Sequence[float]], *,
                   mean: str = "geometric") -> list[np.ndarray]:
    """The normalised geometric mean of each prediction and its reversed twin's (mapped back):
    a prediction that no longer depends on which end of the list an option sits at. ``mean=
    "arithmetic"``: their plain mean, for verbalized and sampled distributions, whose zeros
    (an option no sample named) a geometric mean would carry into the average (for samples it
    pools the answers of both orders)."""
    if mean not in ("geometric", "arithmetic"):
        raise ValueError(f"mean must be geometric or arithmetic, got {mean!r}")
    out = []
    for p, q in zip(as_given, reversed_back):
        if mean == "arithmetic":
            both = 0.5 * (np.asarray(p, dtype=float) + np.asarray(q, dtype=float))
            out.append(both / both.sum())
            continue
        log_mean = 0.5 * (np.log(np.clip(p, 1e-12, None)) + np.log(np.clip(q, 1e-12, None)))
        geometric = np.exp(log_mean - log_mean.max())
        out.append(geometric / geometric.sum())
    return out
