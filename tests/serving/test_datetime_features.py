"""Serving accepts what the model now accepts: a raw ISO timestamp for a datetime feature
(the model derives its calendar parts), any value or none for an ignored column, and any
string for a category with an "other" bucket; the fast path computes the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ratchet.core.schema import ColumnSpec, Schema, TargetSpec
from ratchet.serving import create_app
from ratchet.serving.fastpath import compile_fast_path
from ratchet.serving.validation import RequestError, RowValidator

from .helpers import MemoryProvider, serving_config

SCHEMA = Schema(
    columns=[
        ColumnSpec(name="id", dtype="int", role="ignore", ignore_reason="an identifier", min=0, max=10),
        ColumnSpec(name="at", dtype="datetime", datetime_parts=["year", "month", "dayofweek", "hour"], max_null_share=0.1),
        ColumnSpec(name="city", dtype="category", categories=["lima", "oslo", "pune"], other_bucket=True),
        ColumnSpec(name="x", dtype="float", min=-3, max=3),
    ],
    target=TargetSpec(name="y", classes=["no", "yes"]),
)


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01")
    out = []
    for i in range(n):
        at = (start + pd.Timedelta(minutes=int(rng.integers(0, 2 * 365 * 24 * 60)))).strftime("%Y-%m-%dT%H:%M:%S")
        out.append(
            {
                "at": None if i % 9 == 4 else (at + "Z" if i % 3 == 0 else at),
                "city": str(rng.choice(["lima", "oslo", "pune", "rome", "kyiv"])),
                "x": float(rng.normal()),
            }
        )
    return out


@pytest.fixture(scope="module")
def predictor():
    """A real ratchet model: the ColumnTransformer fitted on raw rows, an untrained MLP."""
    import torch

    from ratchet.training.model.fit import Predictor
    from ratchet.training.model.module import TabularMLP
    from ratchet.training.model.preprocess import build_preprocessor, frame_for_model

    train = pd.DataFrame(_rows(300, seed=1))
    pre = build_preprocessor(SCHEMA)
    x = pre.fit_transform(frame_for_model(train, SCHEMA))
    assert x.shape[1] == 4 + 1 + 4  # 4 calendar parts, x, and lima/oslo/pune/other
    torch.manual_seed(0)
    module = TabularMLP(n_features=x.shape[1], n_classes=2, hidden=(16,), dropout=0.0)
    p = Predictor(pre, module, "ratchet.training.model.module.TabularMLP", SCHEMA)
    p.version = "1"
    return p


def test_the_fast_path_derives_the_same_parts(predictor):
    fast = compile_fast_path(predictor)
    assert fast is not None
    validator = RowValidator(SCHEMA)
    for n, seed in ((1, 2), (40, 3)):
        batch = validator.validate(_rows(n, seed))
        np.testing.assert_allclose(fast.predict_proba(batch.columns, n), predictor.predict_proba(batch.frame), atol=1e-5)
        # the model's own path on the raw strings, as MLflow's pyfunc gets them
        np.testing.assert_allclose(
            fast.predict_proba(batch.columns, n), predictor.predict_proba(pd.DataFrame(_rows(n, seed))), atol=1e-5
        )


def test_validation_of_timestamps_and_ignored_columns():
    validator = RowValidator(SCHEMA)
    batch = validator.validate([{"at": "2024-05-01T08:30:00+02:00", "city": "rome", "x": 0.5, "id": "anything"}])
    assert batch.names == ["at", "city", "x"] and str(batch.columns["at"][0]) == "2024-05-01 06:30:00"
    assert not batch.unseen_categories  # past the top values of an other-bucket column: expected
    with pytest.raises(RequestError) as e:
        validator.validate([{"at": "yesterday", "city": "lima", "x": 0.0}, {"at": 1714552200, "city": "lima", "x": 0.0}])
    errors = e.value.errors
    assert e.value.status == 422 and [(x["row"], x["field"]) for x in errors] == [(0, "at"), (1, "at")]
    assert "'yesterday'" in errors[0]["error"] and "ISO 8601" in errors[1]["error"]


def test_predict_accepts_the_raw_timestamp(tmp_path, predictor):
    app = create_app(MemoryProvider({"1": predictor}, {"champion": "1"}), serving_config(), tmp_path, watch_interval_s=None)
    rows = _rows(12, seed=5)
    with TestClient(app) as c:
        assert app.state.ratchet.snapshot.champion.fast is not None
        r = c.post("/predict", json={"row": {"at": "2024-05-01T08:30:00", "city": "oslo", "x": 0.1, "id": 7}})
        assert r.status_code == 200, r.text
        many = c.post("/predict", json={"rows": rows})
        assert many.status_code == 200, many.text
        bad = c.post("/predict", json={"row": {"at": "01/05/2024", "city": "oslo", "x": 0.1}})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "at"
        body = c.get("/openapi.json").json()
    want = predictor.predict_proba(pd.DataFrame(rows))
    np.testing.assert_allclose(many.json()["probabilities"], want, atol=1e-5)
    row = next(s for name, s in body["components"]["schemas"].items() if "properties" in s and "at" in s["properties"])
    assert set(row["required"]) == {"at", "city", "x"} and "id" in row["properties"]
