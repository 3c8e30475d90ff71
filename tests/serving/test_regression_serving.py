"""A regression champion and challenger (ratchet models fitted on scikit-learn's load_diabetes)
served: numbers on the fast path, equal to the pyfunc's; live MAE/RMSE per version from /feedback;
a label that is not a number is a 422 naming the field."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from ratchet.core.config import load_config
from ratchet.data.schema_inference import infer_schema
from ratchet.serving.state import Slot
from ratchet.training.model.fit import fit
from ratchet.training.model.pyfunc import RatchetPyfunc
from ratchet.training.window import split_frame
from tests.conftest import CONFIG_FILES

from .helpers import feature_rows, serving_config

TARGET = "target"


@pytest.fixture(scope="module")
def diabetes():
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 4, "batch_size": 32})})
    df = load_diabetes(as_frame=True).frame
    schema = infer_schema(df, TARGET)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    models = {}
    for version, lr in (("1", None), ("2", 0.003)):
        params = {} if lr is None else {"learning_rate": lr}
        p = fit(train, val, schema, cfg.train, params, progress=False).predictor
        p.version = version
        models[version] = p
    return schema, test, models


def _use(env, models):
    env.provider.models.update(models)
    env.rt.reload(force=True)


def test_predict_returns_numbers_on_the_fast_path_equal_to_the_pyfunc(serve, diabetes):
    schema, test, models = diabetes
    slot = Slot.of(models["1"])
    assert slot.regression and slot.fast is not None and slot.fast.regression
    assert slot.fast.rows is not None  # one row: the folded single-row path (checked below against the pyfunc)
    with serve(aliases={"champion": "1"}, cfg=serving_config(max_rows=200, max_body_bytes=200_000)) as env:
        _use(env, models)
        assert env.client.get("/stats").json()["fast_path"] == {"1": True}
        rows = feature_rows(test, TARGET)
        r = env.client.post("/predict", json={"rows": rows})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"predictions", "model_version", "alias", "request_id"}
        assert body["model_version"] == "1" and r.headers["X-Model-Version"] == "1"
        got = np.asarray(body["predictions"])
        assert got.dtype == np.float64 and got.shape == (len(test),)
        want = RatchetPyfunc._frame(models["1"], test.drop(columns=[TARGET]))["prediction"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
        one = env.client.post("/predict", json={"row": rows[0]}).json()
        assert one["predictions"] == [pytest.approx(want[0], rel=1e-5)]
        doc = env.client.get("/openapi.json").json()["components"]["schemas"]
        assert "probabilities" not in doc["PredictResponse"]["properties"]
        assert doc["PredictResponse"]["properties"]["predictions"]["items"] == {"type": "number"}


def test_feedback_gives_live_mae_and_rmse_per_version(serve, diabetes):
    _, test, models = diabetes
    rows, y = feature_rows(test, TARGET), test[TARGET].to_numpy(dtype=float)
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        _use(env, models)
        env.client.put("/admin/traffic", json={"challenger_share": 0.5})
        errors: dict[str, list[float]] = {"1": [], "2": []}
        for i, row in enumerate(rows):
            out = env.client.post("/predict", json={"row": row, "entity_key": f"e{i}"}).json()
            fb = env.client.post("/feedback", json={"request_id": out["request_id"], "label": float(y[i])})
            assert fb.status_code == 200, fb.text
            err = out["predictions"][0] - y[i]
            errors[out["model_version"]].append(err)
            assert fb.json()["versions"][out["model_version"]]["mae"] == pytest.approx(abs(err))
        stats = env.client.get("/stats").json()["versions"]
        for v, errs in errors.items():
            assert len(errs) > 10  # both versions answered
            s, e = stats[v], np.asarray(errs)
            assert s["task"] == "regression" and s["feedback"] == len(e) and s["live_accuracy"] is None
            assert s["live_mae"] == pytest.approx(np.abs(e).mean(), rel=1e-9)
            assert s["live_rmse"] == pytest.approx(math.sqrt((e**2).mean()), rel=1e-9)
            assert s["predicted"] == {} and s["rows"] == len(e)
        metrics = env.client.get("/metrics").text
        assert 'ratchet_live_mae{model_version="1"}' in metrics
        assert 'ratchet_live_rmse{model_version="2"}' in metrics


def test_a_label_that_is_not_a_number_is_a_422_naming_the_field(serve, diabetes):
    _, test, models = diabetes
    rows = feature_rows(test.iloc[:3], TARGET)
    with serve(aliases={"champion": "1"}) as env:
        _use(env, models)
        rid = env.client.post("/predict", json={"rows": rows}).json()["request_id"]
        for bad in ("151.0", True, None, [1.0]):
            r = env.client.post("/feedback", json={"request_id": rid, "label": bad})
            assert r.status_code == 422, (bad, r.text)
            assert "field 'label' must be a number" in r.json()["detail"]
        r = env.client.post("/feedback", json={"request_id": rid, "labels": [100.0, "abc", 3]})
        assert r.status_code == 422 and "field 'labels[1]' must be a number" in r.json()["detail"]
        # nothing was recorded by the rejected bodies: the rows can still get their labels
        ok = env.client.post("/feedback", json={"request_id": rid, "labels": [100, 151.5, 3]})
        assert ok.status_code == 200 and ok.json()["versions"]["1"]["total"] == 3
        assert env.client.get("/stats").json()["versions"]["1"]["feedback"] == 3


def test_a_regression_model_without_a_fast_path_serves_the_same_numbers(serve, diabetes):
    _, test, models = diabetes
    rows = feature_rows(test.iloc[:20], TARGET)
    cfg = serving_config(fast_path=False)
    with serve(aliases={"champion": "1"}, cfg=cfg) as env:
        _use(env, models)
        assert env.client.get("/stats").json()["fast_path"] == {"1": False}
        got = env.client.post("/predict", json={"rows": rows}).json()["predictions"]
    want = models["1"].predict(pd.DataFrame(rows))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_in_shadow_the_feedback_scores_both_versions_on_the_same_rows(serve, diabetes):
    _, test, models = diabetes
    rows, y = feature_rows(test.iloc[:30], TARGET), test[TARGET].to_numpy(dtype=float)[:30]
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        _use(env, models)
        env.client.put("/admin/traffic", json={"challenger_share": 1.0, "shadow": True})
        out = env.client.post("/predict", json={"rows": rows}).json()
        assert out["model_version"] == "1"
        env.rt.drain_shadow()
        fb = env.client.post("/feedback", json={"request_id": out["request_id"], "labels": y.tolist()}).json()
        want = {v: np.abs(np.asarray(models[v].predict(pd.DataFrame(rows))) - y).mean() for v in ("1", "2")}
        assert fb["versions"]["1"]["mae"] == pytest.approx(want["1"], rel=1e-4)
        assert fb["versions"]["2"]["mae"] == pytest.approx(want["2"], rel=1e-4)
        stats = env.client.get("/stats").json()["versions"]
        assert stats["2"]["shadow_rows"] == 30 and stats["2"]["live_mae"] == pytest.approx(want["2"], rel=1e-4)


def test_open_inference_protocol_gives_a_regression_model_numbers_only(serve, diabetes):
    _, test, models = diabetes
    rows = feature_rows(test.head(20), TARGET)
    cols = list(rows[0])
    body = {"inputs": [{"name": c, "shape": [20, 1], "datatype": "FP64", "data": [r[c] for r in rows]} for c in cols]}
    with serve(aliases={"champion": "1"}) as env:
        _use(env, models)
        meta = env.client.get("/v2/models/ratchet").json()
        assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
        assert {t["datatype"] for t in meta["inputs"]} == {"FP64"}
        r = env.client.post("/v2/models/ratchet/infer", json=body)
        assert r.status_code == 200, r.text
        (out,) = r.json()["outputs"]
        want = env.client.post("/predict", json={"rows": rows}).json()["predictions"]
        assert out["name"] == "predictions" and out["datatype"] == "FP64" and out["data"] == want
        r = env.client.post("/v2/models/ratchet/infer", json={**body, "outputs": [{"name": "probabilities"}]})
        assert r.status_code == 400 and "not given by this model" in r.json()["error"]
