"""Prior-anchored prediction, held-out validation populations and order averaging, on a tiny
random model and synthetic items with real country names (so that regions apply)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import synthetic_items

from surveytune.data.splits import carve_populations
from surveytune.methods.baselines import region_mean
from surveytune.methods.ordering import reversed_item
from surveytune.methods.priors import PRIOR_FLOOR, Prior, make_prior
from surveytune.simulator import Simulator
from surveytune.training.recipe import TrainConfig

COUNTRIES = ("Sweden", "Norway", "Germany", "Japan", "Chile")


def _items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synthetic_items(n_questions=6, populations=COUNTRIES, seed=3)


def test_prior_is_the_baseline_floored_and_survives_a_save(tmp_path):
    items = _items()
    train = [i for i in items if i.population != "Norway"]
    prior = make_prior("region-mean", train)
    assert make_prior("none", train) is None
    norway = [i for i in items if i.population == "Norway"]
    expected = [np.log(np.clip(p, PRIOR_FLOOR, None)) for p in region_mean(train, norway)]
    for a, b in zip(prior.log_priors(norway), expected):
        np.testing.assert_array_equal(a, b)
    prior.save(tmp_path / "prior.json")
    for a, b in zip(Prior.load(tmp_path / "prior.json").log_priors(norway), expected):
        np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="unknown prior"):
        Prior("median", train)


def test_anchored_prediction_is_the_model_times_the_prior(tiny_model_dir):
    items = _items()
    sim = Simulator.load(str(tiny_model_dir), chat=False)
    plain = sim.predict(items, progress=False)
    sim.prior = make_prior("country-mean", items)
    anchored = sim.predict(items, progress=False)
    for p, a, log_prior in zip(plain, anchored, sim.prior.log_priors(items)):
        expected = p.distribution * np.exp(log_prior)
        np.testing.assert_allclose(a.distribution, expected / expected.sum(), atol=1e-5)
        assert a.letter_mass == pytest.approx(p.letter_mass)  # the mass stays the model's


def test_carve_populations_holds_out_whole_seeded_populations():
    items = _items()
    kept, held = carve_populations(items, 2, seed=1)
    held_names = {i.population for i in held}
    assert len(held_names) == 2 and not held_names & {i.population for i in kept}
    assert len(kept) + len(held) == len(items)
    assert carve_populations(items, 2, seed=1) == (kept, held)
    with pytest.raises(ValueError, match="leave at least one"):
        carve_populations(items, len(COUNTRIES), seed=1)


def test_anchored_fit_validates_heldout_populations_and_round_trips(tiny_model_dir, tmp_path):
    items = _items()
    train = [i for i in items if i.question_id not in ("q4", "q5")]
    valid = [i for i in items if i.question_id in ("q4", "q5")]
    sim = Simulator.load(str(tiny_model_dir), chat=False)
    config = TrainConfig(max_steps=4, batch_size=4, eval_every=2, learning_rate=5e-3,
                         target_modules=("all-linear",), prior="region-mean",
                         heldout_populations=1, select_on="mean")
    result = sim.fit(train, valid, tmp_path / "run", config, progress=False)
    for record in result.history:
        assert record["selection_loss"] == pytest.approx(
            (record["valid_loss"] + record["heldout_loss"]) / 2)
    assert result.best_valid_loss == min(r["selection_loss"] for r in result.history)
    adapter = tmp_path / "run" / "adapter"
    saved = json.loads((adapter / "prior.json").read_text())
    assert saved["name"] == "region-mean"
    # The held-out population is not in the prior's (training) rows.
    assert len({row["population"] for row in saved["rows"]}) == len(COUNTRIES) - 1
    before = sim.predict(valid, progress=False)
    reloaded = Simulator.load(str(tiny_model_dir), adapter=adapter)
    assert reloaded.prior is not None and reloaded.prior.name == "region-mean"
    for a, b in zip(before, reloaded.predict(valid, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-5)
    (adapter / "prior.json").unlink()
    with pytest.raises(Exception, match="no prior.json"):
        Simulator.load(str(tiny_model_dir), adapter=adapter)


def test_order_averaged_predictions_do_not_depend_on_option_order(tiny_model_dir):
    items = [i for i in _items() if i.n_options > 2][:6]
    sim = Simulator.load(str(tiny_model_dir), chat=False)
    plain = sim.predict(items, progress=False)
    back = sim.predict_reversed(items, progress=False)
    twins = sim.predict([reversed_item(i) for i in items], progress=False)
    for b, t in zip(back, twins):
        np.testing.assert_allclose(b.distribution, t.distribution[::-1])
    assert any(not np.allclose(p.distribution, b.distribution, atol=1e-3)
               for p, b in zip(plain, back))  # the random model does depend on order
    sim.order_average = True
    averaged = sim.predict(items, progress=False)
    averaged_twins = sim.predict([reversed_item(i) for i in items], progress=False)
    for a, t in zip(averaged, averaged_twins):
        np.testing.assert_allclose(a.distribution, t.distribution[::-1], atol=1e-6)


def test_order_averaging_reverses_the_prior_with_the_options(tiny_model_dir):
    items = [i for i in _items() if i.n_options > 2][:6]
    sim = Simulator.load(str(tiny_model_dir), chat=False, order_average=True)
    sim.prior = make_prior("country-mean", _items())
    averaged = sim.predict(items, progress=False)
    sim.order_average = False
    given = sim.predict(items, progress=False)
    back = sim.predict_reversed(items, progress=False)
    # The reversed twin's prior is the item's prior reversed, so the anchored twin mapped back
    # is the anchored item up to the model's own order effect, and the average is symmetric.
    for a, g, b in zip(averaged, given, back):
        expected = np.sqrt(g.distribution * b.distribution)
        np.testing.assert_allclose(a.distribution, expected / expected.sum(), atol=1e-6)
