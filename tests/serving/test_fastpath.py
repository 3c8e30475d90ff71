"""The pandas-free fast path gives the model's own predict_proba, or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ratchet.serving import create_app
from ratchet.serving.fastpath import compile_fast_path
from ratchet.serving.validation import RowValidator
from ratchet.training.model.fit import Predictor

from .helpers import MIXED_SCHEMA as SCHEMA
from .helpers import MemoryProvider, mixed_rows, ratchet_predictor, serving_config


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return ratchet_predictor()


def test_fast_path_matches_predict_proba(predictor):
    fast = compile_fast_path(predictor)
    assert fast is not None
    validator = RowValidator(SCHEMA)
    for n, seed in ((1, 2), (7, 3), (300, 4)):
        batch = validator.validate(mixed_rows(n, seed, messy=True))
        got = fast.predict_proba(batch.columns, batch.n_rows)
        want = predictor.predict_proba(batch.frame)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert fast.matrix(batch.columns, n).shape == (n, fast.width)


def test_fast_path_refused_when_it_would_disagree(predictor):
    class Shifted(Predictor):
        def predict_proba(self, df):
            return super().predict_proba(df)[:, ::-1]  # not what the network computes

    shifted = Shifted(predictor.preprocessor, predictor.module, predictor.module_class, SCHEMA)
    assert compile_fast_path(shifted) is None

    class NoModule:  # any other model: served through its own predict_proba
        schema, classes, version = SCHEMA, ["no", "maybe", "yes"], "9"

        def predict_proba(self, df):
            return np.full((len(df), 3), 1 / 3)

    assert compile_fast_path(NoModule()) is None


def test_served_answers_equal_the_model(tmp_path, predictor):
    app = create_app(
        MemoryProvider({"1": predictor}, {"champion": "1"}), serving_config(), tmp_path, watch_interval_s=None
    )
    rows = mixed_rows(20, seed=5, messy=True)
    with TestClient(app) as c:
        slot = app.state.ratchet.snapshot.champion
        assert slot.fast is not None
        single = [c.post("/predict", json={"row": r}).json() for r in rows[:5]]
        many = c.post("/predict", json={"rows": rows}).json()
    want = predictor.predict_proba(RowValidator(SCHEMA).validate(rows).frame)
    np.testing.assert_allclose(many["probabilities"], want, atol=1e-5)
    assert many["predictions"] == [["no", "maybe", "yes"][i] for i in want.argmax(axis=1)]
    for i, b in enumerate(single):
        np.testing.assert_allclose(b["probabilities"][0], want[i], atol=1e-5)


def test_unscorable_input_is_422_but_a_broken_model_is_500(tmp_path, predictor):
    import copy

    import torch

    broken = copy.deepcopy(predictor)
    broken.version = "2"
    with torch.no_grad():
        broken.module.net[0].weight[0, 0] = float("nan")  # as after a diverged training run
    provider = MemoryProvider({"1": predictor, "2": broken}, {"champion": "1"})
    app = create_app(provider, serving_config(), tmp_path, watch_interval_s=None)
    row = mixed_rows(1, seed=6, messy=False)[0]
    with TestClient(app) as c:
        r = c.post("/predict", json={"rows": [row, dict(row, a=1.7976931348623155e308)]})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["row"] == 1 and r.json()["errors"][0]["field"] == "a"
        assert "rows[1].a" in r.json()["detail"]
        assert c.post("/predict", json={"row": dict(row, a=50.0)}).status_code == 200  # merely out of range
        provider.set_alias("champion", "2")
        c.post("/admin/reload")
        assert app.state.ratchet.snapshot.champion.fast is None  # disagrees with itself: NaN
        assert c.post("/predict", json={"row": row}).status_code == 500


def test_shadow_of_a_fast_path_challenger_runs_after_the_answer_on_the_event_loop(tmp_path, predictor):
    """Single rows on fast paths: the challenger's shadow prediction is the response's background
    (no shadow thread), recorded as the thread's would be: counts, comparisons, feedback."""
    import copy

    import torch

    challenger = copy.deepcopy(predictor)
    challenger.version = "2"
    with torch.no_grad():
        challenger.module.net[0].bias.add_(0.5)  # answers differ from the champion's on some rows
    app = create_app(MemoryProvider({"1": predictor, "2": challenger}, {"champion": "1", "challenger": "2"}),
                     serving_config(), tmp_path, watch_interval_s=None)
    rows = mixed_rows(30, seed=7, messy=False)
    with TestClient(app) as c:
        rt = app.state.ratchet
        assert rt.snapshot.challenger.fast is not None
        c.put("/admin/traffic", json={"challenger_share": 1.0, "shadow": True}).raise_for_status()
        answers = [c.post("/predict", json={"row": r}) for r in rows]
        assert all(a.status_code == 200 and a.headers["X-Model-Version"] == "1" for a in answers)
        assert rt._shadow_pool is None  # nothing went to the shadow thread
        stats = c.get("/stats").json()["versions"]
        assert stats["2"]["shadow_requests"] == stats["2"]["shadow_rows"] == len(rows)
        assert stats["1"]["rows"] == len(rows) and stats["2"]["rows"] == 0
        metrics = c.get("/metrics").text
        agree = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("ratchet_shadow_comparisons_total{"))
        assert agree == len(rows)
        body = answers[0].json()
        fb = c.post("/feedback", json={"request_id": body["request_id"], "label": body["predictions"][0]}).json()
        assert set(fb["versions"]) == {"1", "2"}  # the shadow answer is scored too


def test_single_row_path_matches_the_model_row_by_row(predictor):
    """One row goes through the folded single-row path (a list, then one numpy call per layer),
    which gives what the model's own predict_proba gives on nulls, unseen categories and out-of-range values."""
    fast = compile_fast_path(predictor)
    assert fast is not None and fast.rows is not None
    validator = RowValidator(SCHEMA)
    rows = mixed_rows(300, seed=11, messy=True)
    want = predictor.predict_proba(validator.validate(rows).frame)
    for i, r in enumerate(rows):
        got = fast.predict_proba(validator.validate([r]).columns, 1)
        assert got.shape == (1, 3)
        np.testing.assert_allclose(got, want[i:i + 1], atol=1e-5)
    # the single rows of concurrent requests in one forward (the service's batching), in their order
    each = [validator.validate([r]).columns for r in rows[:16]]
    np.testing.assert_allclose(fast.predict_rows(each), want[:16], atol=1e-5)


def test_single_row_path_dropped_when_it_disagrees(predictor, monkeypatch):
    import ratchet.serving.fastpath as fp

    monkeypatch.setattr(fp, "_softmax_rows", lambda logits: np.full(logits.shape, 1 / logits.shape[1]))
    fast = compile_fast_path(predictor)
    assert fast is not None and fast.rows is None  # the matrix path still serves
    batch = RowValidator(SCHEMA).validate(mixed_rows(1, seed=3, messy=False))
    np.testing.assert_allclose(fast.predict_proba(batch.columns, 1), predictor.predict_proba(batch.frame), atol=1e-5)
