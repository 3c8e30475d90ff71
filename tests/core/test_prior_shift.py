"""Prior shift: the test that says the base rate moved, and the re-weighting that follows it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ratchet.core.config import DriftConfig
from ratchet.core.prior_shift import check_prior, dumps, loads, prior_weights, reweight, shares

CLASSES = ["fog", "rain", "sun"]


def test_a_class_that_all_but_vanishes_is_a_prior_shift():
    # seattle-weather: rain on 57 of 181 days in 2013H1 (the champion's rows), 3 of 184 in 2013H2
    found = check_prior({"fog": 30, "rain": 57, "sun": 94}, {"fog": 52, "rain": 3, "sun": 129}, CLASSES, DriftConfig())
    assert found.detected and found.p_value < 1e-6 and found.effect > 0.3
    assert found.batch_shares["rain"] < 0.03 < found.train_shares["rain"]


def test_the_same_base_rate_is_no_shift_and_the_verdict_does_not_grow_with_n():
    cfg = DriftConfig()
    assert not check_prior({"fog": 300, "rain": 300, "sun": 400}, {"fog": 31, "rain": 29, "sun": 40}, CLASSES, cfg).detected
    # half a point of base rate on a million rows: significant, but an effect far below min_effect
    small = check_prior({"fog": 500_000, "rain": 500_000, "sun": 0}, {"fog": 505_000, "rain": 495_000, "sun": 0},
                        CLASSES, cfg)
    assert small.p_value < 1e-6 and small.effect < cfg.min_effect and not small.detected


def test_with_the_correction_off_a_shift_is_reported_and_nothing_applied():
    found = check_prior({"fog": 30, "rain": 57, "sun": 94}, {"fog": 52, "rain": 3, "sun": 129}, CLASSES, DriftConfig())
    assert found.detected and found.applied
    off = replace(found, correction=False)
    assert off.detected and not off.applied and off.to_dict()["correction"] is False
    assert "reported only" in off.describe("b1") and "re-weighted to b1" in found.describe("b1")


def test_reweighting_gives_the_bayes_posterior_under_the_new_prior():
    # two Gaussian classes (means -1 and +1, sd 1): the exact posterior at any prior is known
    x = np.linspace(-3, 3, 61)
    like = np.stack([np.exp(-(x + 1) ** 2 / 2), np.exp(-(x - 1) ** 2 / 2)], axis=1)

    def posterior(prior):
        p = like * np.asarray(prior)
        return p / p.sum(axis=1, keepdims=True)

    trained_at = {"a": 5000, "b": 5000}  # the training rows' counts: 1/2 each
    new = {"a": 0.9, "b": 0.1}
    got = reweight(posterior([0.5, 0.5]), prior_weights(trained_at, new, ["a", "b"]))
    np.testing.assert_allclose(got, posterior([0.9, 0.1]), atol=1e-3)  # Laplace's +1 on 10,000 rows
    assert got.dtype == np.float64 and np.allclose(got.sum(axis=1), 1.0)


def test_shares_keep_an_unseen_class_and_the_mark_round_trips():
    s = shares({"fog": 10, "sun": 10}, CLASSES)
    assert s[1] > 0 and s.sum() == pytest.approx(1.0)
    assert loads(dumps({"fog": 0.5, "sun": 0.5})) == {"fog": 0.5, "sun": 0.5}
    assert loads(dumps(None)) == {} and loads(None) == {}


def _gaussian_champion(n: int, share_b: float, seed: int):
    """Two classes, x ~ N(-1, 1) for a and N(+1, 1) for b; the champion's probabilities are the exact
    posterior at the training prior (1/2 each); the batch's labels have ``share_b`` of b."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < share_b, "b", "a")
    x = rng.normal(np.where(truth == "b", 1.0, -1.0), 1.0)
    like = np.stack([np.exp(-(x + 1) ** 2 / 2), np.exp(-(x - 1) ** 2 / 2)], axis=1)
    return like / like.sum(axis=1, keepdims=True), truth


def test_the_reweighting_must_be_significantly_better_on_the_batch_cross_fitted():
    from ratchet.core.prior_shift import crossfit_test

    train = {"a": 5000, "b": 5000}
    proba, truth = _gaussian_champion(400, 0.1, seed=1)  # the base rate moved from 1/2 to 1/10 (label shift)
    found = crossfit_test(proba, truth, ["a", "b"], train, alpha=0.05, seed=0)
    assert found["rows"] == 400 and found["reweighted"] > found["trained"] + 0.04
    assert found["reweighted_only"] > 3 * found["trained_only"] and found["p_value"] < 1e-4
    shifted = check_prior(train, {"a": 360, "b": 40}, ["a", "b"], DriftConfig())
    assert shifted.detected and replace(shifted, test=found).applied

    same = crossfit_test(*_gaussian_champion(400, 0.5, seed=2), ["a", "b"], train, alpha=0.05, seed=0)
    assert same["p_value"] > 0.05 and not replace(shifted, test=same).applied  # nothing to gain: not applied


def test_a_class_the_champion_barely_saw_does_not_take_over_when_reweighted():
    # seattle's trap: fog on 5 of 366 training rows, then 30 % of a batch. The champion's fog
    # probabilities carry no signal; re-weighted by about 50 they name fog on rows at random.
    from ratchet.core.prior_shift import crossfit_test

    rng = np.random.default_rng(3)
    truth = np.where(rng.random(300) < 0.3, "fog", "sun")
    p_fog = rng.uniform(0.0, 0.02, 300)
    proba = np.stack([p_fog, 1 - p_fog], axis=1)
    found = crossfit_test(proba, truth, ["fog", "sun"], {"fog": 5, "sun": 995}, alpha=0.05)
    assert found["reweighted"] < found["trained"] and found["p_value"] > 0.5
    shifted = check_prior({"fog": 5, "sun": 995}, {"fog": 90, "sun": 210}, ["fog", "sun"], DriftConfig())
    checked = replace(shifted, test=found)
    assert shifted.detected and not checked.applied
    assert "not re-weighted" in checked.describe("b7") and checked.to_dict()["test"]["trained_only"] > 0
