"""The Lightning model: preprocessing inside, seeded, serving equals training."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ratchet.demo.synthetic import DEMO_TARGET
from ratchet.training.model.fit import fit
from ratchet.training.model.module import import_class


def test_fit_learns_and_round_trips(setup):
    cfg, schema, train, val, test = setup
    result = fit(train, val, schema, cfg.train, progress=False)
    acc = np.mean(np.array(result.predictor.predict(test)) == test[DEMO_TARGET].to_numpy())
    assert acc > 0.75
    assert len(result.history) == result.metrics["epochs"] or result.history
    clone = pickle.loads(pickle.dumps(result.predictor))
    np.testing.assert_array_equal(clone.predict_proba(test), result.predictor.predict_proba(test))


def test_seeded_runs_give_the_same_metrics(setup):
    cfg, schema, train, val, _ = setup
    a = fit(train, val, schema, cfg.train, progress=False)
    b = fit(train, val, schema, cfg.train, progress=False)
    assert a.metrics["val_loss"] == b.metrics["val_loss"]


def test_unseen_category_and_missing_value_are_handled(setup):
    cfg, schema, train, val, test = setup
    predictor = fit(train, val, schema, cfg.train, progress=False).predictor
    rows = test.head(3).copy()
    cat = next(c.name for c in schema.columns if c.dtype == "category")
    num = next(c.name for c in schema.columns if c.dtype == "float")
    rows[cat] = ["never-seen", None, rows[cat].iloc[2]]
    rows[num] = [np.nan, rows[num].iloc[1], rows[num].iloc[2]]
    proba = predictor.predict_proba(rows)
    assert proba.shape == (3, 2) and np.isfinite(proba).all()


def test_model_class_must_be_a_lightning_module():
    with pytest.raises(ValueError, match="not a LightningModule"):
        import_class("collections.OrderedDict")
    with pytest.raises(ValueError, match="cannot import"):
        import_class("nowhere.Model")
