"""Calibration: hand-computed combinations, the fit on validation items, the round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import synthetic_items

from surveytune.methods.calibration import Calibration, fit_calibration
from surveytune.methods.priors import calibration_groups, make_prior
from surveytune.simulator import Simulator
from surveytune.training.recipe import TrainConfig


def test_apply_combines_model_and_prior_at_the_groups_scale():
    calibration = Calibration({"seen": 0.5, "unseen": 2.0})
    model = [[0.8, 0.2], [0.6, 0.4]]
    priors = [np.log([0.5, 0.5]), np.log([0.1, 0.9])]
    seen, unseen = calibration.apply(model, priors, ["seen", "unseen"])
    expected = np.sqrt([0.8, 0.2]) * 0.5
    np.testing.assert_allclose(seen, expected / expected.sum())
    expected = np.array([0.36 * 0.1, 0.16 * 0.9])
    np.testing.assert_allclose(unseen, expected / expected.sum())
    # A missing group uses 1, and no prior means a temperature.
    only = Calibration({}).apply([[0.7, 0.3]], None, ["seen"])[0]
    np.testing.assert_allclose(only, [0.7, 0.3])


def test_fit_picks_the_prior_alone_when_the_model_is_noise():
    rng = np.random.default_rng(0)
    humans = [rng.dirichlet([3, 3, 3]) for _ in range(40)]
    priors = [np.log(h) for h in humans]  # a perfect prior
    model = [rng.dirichlet([1, 1, 1]) for _ in range(40)]  # unrelated to the humans
    fitted = fit_calibration(model, priors, humans, ["seen"] * 40)
    assert fitted.scales == {"seen": 0.0} and fitted.prior_weights == {"seen": 1.0}
    assert fitted.fitted_on == {"seen": 40, "unseen": 0}


def test_fit_drops_a_misleading_prior():
    rng = np.random.default_rng(2)
    humans = [rng.dirichlet([4, 4, 4]) for _ in range(40)]
    model = [h ** 1.0 for h in humans]  # the model knows the answers
    priors = [np.log(rng.dirichlet([0.3, 0.3, 0.3])) for _ in humans]  # a prior that does not
    fitted = fit_calibration(model, priors, humans, ["unseen"] * 40)
    assert fitted.prior_weights == {"unseen": 0.0} and fitted.scales == {"unseen": 1.0}
    weighted = Calibration({"unseen": 1.0}, prior_weights={"unseen": 0.5}).apply(
        [[0.6, 0.4]], [np.log([0.2, 0.8])], ["unseen"])[0]
    expected = np.array([0.6 * 0.2 ** 0.5, 0.4 * 0.8 ** 0.5])
    np.testing.assert_allclose(weighted, expected / expected.sum())


def test_fit_finds_the_temperature_that_undoes_a_sharpened_model():
    rng = np.random.default_rng(1)
    humans = [rng.dirichlet([2, 2, 2, 2]) for _ in range(60)]
    sharpened = [h ** 2 / np.sum(h ** 2) for h in humans]  # the model squares the shares
    fitted = fit_calibration(sharpened, None, humans, ["unseen"] * 60)
    assert fitted.scales["unseen"] == pytest.approx(0.5)
    assert "seen" not in fitted.scales  # no seen items: that group keeps 1


def test_fit_refuses_misaligned_input_and_bad_records_are_refused():
    with pytest.raises(ValueError, match="one model distribution"):
        fit_calibration([[0.5, 0.5]], None, [], ["seen"])
    with pytest.raises(ValueError, match="not a calibration record"):
        Calibration.from_dict({"scales": {"seen": -1}})


def test_calibrated_fit_round_trips_through_the_adapter(tiny_model_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = synthetic_items(n_questions=14, populations=("Sweden", "Norway", "Germany",
                                                             "Japan", "Chile", "Peru"), seed=5)
    held_questions = ("q10", "q11", "q12", "q13")
    train = [i for i in items if i.question_id not in held_questions]
    valid = [i for i in items if i.question_id in held_questions]
    sim = Simulator.load(str(tiny_model_dir), chat=False)
    config = TrainConfig(max_steps=2, batch_size=4, eval_every=1, learning_rate=5e-3,
                         target_modules=("all-linear",), prior="region-mean",
                         heldout_populations=2, select_on="mean", calibrate=True)
    sim.fit(train, valid, tmp_path / "run", config, progress=False)
    meta = json.loads((tmp_path / "run" / "adapter" / "surveytune.json").read_text())
    # valid: 4 unseen questions x 6 countries; held out: 2 countries x 10 seen questions
    assert meta["calibration"]["fitted_on"] == {"seen": 20, "unseen": 24}
    assert set(meta["calibration"]["scales"]) == {"seen", "unseen"}
    assert set(meta["calibration"]["prior_weights"]) == {"seen", "unseen"}
    assert sim.calibration is not None
    assert calibration_groups(valid, sim.prior) == ["unseen"] * len(valid)
    before = sim.predict(valid, progress=False)
    reloaded = Simulator.load(str(tiny_model_dir), adapter=tmp_path / "run" / "adapter")
    assert reloaded.calibration.to_dict() == sim.calibration.to_dict()
    for a, b in zip(before, reloaded.predict(valid, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-5)
    # Every scale 1 is plain prior anchoring.
    reloaded.calibration = Calibration({"seen": 1.0, "unseen": 1.0})
    calibrated = reloaded.predict(valid, progress=False)
    reloaded.calibration = None
    for a, b in zip(calibrated, reloaded.predict(valid, progress=False)):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-5)


def test_groups_follow_the_priors_training_questions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = synthetic_items(n_questions=3, populations=("Sweden", "Japan"))
    prior = make_prior("country-mean", [i for i in items if i.question_id != "q2"])
    assert calibration_groups(items, prior) == ["seen"] * 4 + ["unseen"] * 2
    assert calibration_groups(items, None) == ["unseen"] * 6


def test_calibration_reuses_the_kept_steps_validation_scores(tiny_model_dir, tmp_path,
                                                             monkeypatch):
    """The calibration fit on the distributions validation computed at the kept step equals
    the one fit by scoring the validation sets again with the kept weights."""
    import surveytune.training.recipe as training
    import surveytune.training.validation as validation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = synthetic_items(n_questions=16, populations=(
            "Sweden", "Norway", "Germany", "Japan", "Chile", "Peru", "Kenya", "Egypt"), seed=3)
    valid_questions = ("q12", "q13", "q14", "q15")  # 32 unseen items; held out: 36 seen
    train = [i for i in items if i.question_id not in valid_questions]
    valid = [i for i in items if i.question_id in valid_questions]
    # The kept step is not the last here (measured: step 0 of 3), so distributions of a
    # later step would give another calibration.
    config = TrainConfig(max_steps=3, batch_size=4, eval_every=1, learning_rate=5e-2,
                         target_modules=("all-linear",), prior="region-mean",
                         heldout_populations=3, select_on="mean", calibrate=True)
    fitted, original = {}, validation.model_distributions
    scorings: list[str] = []  # each scoring's progress label
    monkeypatch.setattr(validation, "model_distributions",
                        lambda *a, **k: scorings.append(a[5]) or original(*a, **k))
    for how in ("reused", "scored again"):
        scorings.clear()
        if how == "scored again":
            monkeypatch.setattr(training, "fit_on_validation",
                                lambda *a, scored=None, **k: validation.fit_on_validation(*a, **k))
        sim = Simulator.load(str(tiny_model_dir), chat=False)
        sim.fit(train, valid, tmp_path / how, config, progress=False)
        fitted[how] = sim.calibration.to_dict()
        assert fitted[how]["fitted_on"] == {"seen": 36, "unseen": 32}
        assert json.loads((tmp_path / how / "training.json").read_text())["best_step"] < 3
        assert scorings.count("calibrating") == (0 if how == "reused" else 2)
    assert fitted["reused"] == fitted["scored again"]
