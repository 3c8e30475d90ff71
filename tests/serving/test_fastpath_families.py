"""The fast path serves every model family with a numpy forward pass equal to the model's own."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ratchet.core.schema import Schema
from ratchet.serving import create_app
from ratchet.serving.fastpath import _numpy_network, compile_fast_path
from ratchet.serving.validation import RowValidator
from ratchet.training.model.families import FAMILIES

from .helpers import (
    MIXED_SCHEMA,
    REGRESSION_SCHEMA,
    MemoryProvider,
    family_predictor,
    mixed_rows,
    serving_config,
)

CATEGORIES_ONLY = Schema(columns=[c for c in MIXED_SCHEMA.columns if c.dtype == "category"], target=MIXED_SCHEMA.target)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_served_by_a_numpy_forward_equal_to_its_predict_proba(tmp_path, family):
    predictor = family_predictor(family, MIXED_SCHEMA)
    assert _numpy_network(predictor.module) is not None  # numpy, not the torch fallback
    fast = compile_fast_path(predictor)
    assert fast is not None
    rows = mixed_rows(50, seed=5, messy=True)
    batch = RowValidator(MIXED_SCHEMA).validate(rows)
    want = predictor.predict_proba(batch.frame)
    assert want.std(axis=0).max() > 1e-3  # the random weights give answers that differ row to row
    np.testing.assert_allclose(fast.predict_proba(batch.columns, batch.n_rows), want, atol=1e-5)
    # one row at a time: the family's own row forward (model.families: `row`), checked at load
    assert fast.rows is not None
    for i in range(0, 50, 7):
        one = RowValidator(MIXED_SCHEMA).validate([rows[i]])
        np.testing.assert_allclose(fast.predict_proba(one.columns, 1), want[i:i + 1], atol=1e-5)
    # the single rows of concurrent requests in one forward (the service's batching)
    each = [RowValidator(MIXED_SCHEMA).validate([r]).columns for r in rows[:9]]
    np.testing.assert_allclose(fast.predict_rows(each), want[:9], atol=1e-5)
    app = create_app(MemoryProvider({"1": predictor}, {"champion": "1"}), serving_config(), tmp_path,
                     watch_interval_s=None)
    with TestClient(app) as c:
        assert app.state.ratchet.snapshot.champion.fast is not None
        single = c.post("/predict", json={"row": rows[0]}).json()
        many = c.post("/predict", json={"rows": rows}).json()
    np.testing.assert_allclose(many["probabilities"], want, atol=1e-5)
    np.testing.assert_allclose(single["probabilities"][0], want[0], atol=1e-5)


@pytest.mark.parametrize("family", ["mlp_ple", "tabm"])
def test_regression_families_are_served_by_the_fast_path(family):
    predictor = family_predictor(family, REGRESSION_SCHEMA)
    fast = compile_fast_path(predictor)
    assert fast is not None and fast.regression
    batch = RowValidator(REGRESSION_SCHEMA).validate(mixed_rows(30, seed=6, messy=True))
    want = predictor.predict(batch.frame)
    np.testing.assert_allclose(fast.predict_values(batch.columns, batch.n_rows), want, rtol=1e-4, atol=1e-4)
    assert fast.rows is not None
    one = RowValidator(REGRESSION_SCHEMA).validate(mixed_rows(30, seed=6, messy=True)[:1])
    np.testing.assert_allclose(fast.predict_values(one.columns, 1), want[:1], rtol=1e-4, atol=1e-4)
    each = [RowValidator(REGRESSION_SCHEMA).validate([r]).columns for r in mixed_rows(30, seed=6, messy=True)[:5]]
    np.testing.assert_allclose(fast.predict_rows(each), want[:5], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["mlp_ple", "tabm"])
def test_embedding_families_without_numeric_columns_have_their_single_row_forward(family):
    """No column to embed: the network reads the one-hot row itself, one row at a time too."""
    predictor = family_predictor(family, CATEGORIES_ONLY)
    assert predictor.module.n_numeric == 0
    fast = compile_fast_path(predictor)
    assert fast is not None and fast.rows is not None
    names = [c.name for c in CATEGORIES_ONLY.columns]
    rows = [{k: r[k] for k in names} for r in mixed_rows(20, seed=8, messy=False)]
    batch = RowValidator(CATEGORIES_ONLY).validate(rows)
    want = predictor.predict_proba(batch.frame)
    assert want.std(axis=0).max() > 1e-3
    for i in range(0, 20, 3):
        one = RowValidator(CATEGORIES_ONLY).validate([rows[i]])
        np.testing.assert_allclose(fast.predict_proba(one.columns, 1), want[i:i + 1], atol=1e-5)


def test_a_family_whose_numpy_forward_disagrees_falls_back_to_torch(caplog):
    """A wrong numpy forward is caught by the check at load: the module's torch forward serves instead."""
    predictor = family_predictor("tabm", MIXED_SCHEMA)
    right = predictor.module.numpy_forward
    predictor.module.numpy_forward = lambda: (lambda x, f=right(): f(x)[:, ::-1])
    fast = compile_fast_path(predictor)
    assert fast is not None
    batch = RowValidator(MIXED_SCHEMA).validate(mixed_rows(10, seed=7, messy=True))
    np.testing.assert_allclose(fast.predict_proba(batch.columns, batch.n_rows), predictor.predict_proba(batch.frame),
                               atol=1e-5)
