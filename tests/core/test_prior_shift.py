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


def test_a_detected_shift_is_applied_only_where_the_reweighted_champion_is_no_worse_on_held_out_rows():
    from dataclasses import replace

    found = check_prior({"fog": 30, "rain": 57, "sun": 94}, {"fog": 52, "rain": 3, "sun": 129}, CLASSES, DriftConfig())
    assert found.applied  # not measured: applied
    assert replace(found, held_out={"rows": 36, "trained": 0.70, "reweighted": 0.70}).applied
    assert not replace(found, held_out={"rows": 36, "trained": 0.70, "reweighted": 0.66}).applied
    same = check_prior({"fog": 30, "rain": 30, "sun": 40}, {"fog": 30, "rain": 30, "sun": 40}, CLASSES, DriftConfig())
    assert not same.detected and not replace(same, held_out={"rows": 1, "trained": 0.0, "reweighted": 1.0}).applied
