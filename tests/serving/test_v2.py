"""The Open Inference Protocol (KServe V2) beside /predict: the real clients (tritonclient's HTTP
client, the kserve SDK's REST client) against the service on a loopback port, and the protocol's
edges through the test client."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from ratchet.demo.traffic import BackgroundServer
from ratchet.serving import create_app

from .helpers import CalibratedModel, MemoryProvider, SkModel, make_frame, rows_of, serving_config, true_label

NAME = "ratchet-classifier"
COLUMNS = ("x1", "x2", "color", "flag")
DATATYPES = {"x1": "FP64", "x2": "INT64", "color": "BYTES", "flag": "BOOL"}


def v2_body(rows: list[dict], **extra) -> dict:
    """An infer request: one [n, 1] tensor per column."""
    inputs = [{"name": c, "shape": [len(rows), 1], "datatype": DATATYPES[c], "data": [r[c] for r in rows]}
              for c in COLUMNS]
    return {"inputs": inputs, **extra}


@pytest.fixture
def live_server(tmp_path, models):
    """The service on a loopback port (uvicorn), champion 1 and challenger 2 at share 0."""
    provider = MemoryProvider(models, {"champion": "1", "challenger": "2"})
    cfg = serving_config(profile_batch_rows=100_000, profile_flush_s=60.0, profile_window_s=3600.0)
    app = create_app(provider, cfg, tmp_path, watch_interval_s=None, model_name=NAME)
    server = BackgroundServer(app).start()
    try:
        yield app, server
    finally:
        server.stop()


def test_tritonclient_health_metadata_and_infer_equal_predict(live_server):
    import httpx
    import tritonclient.http as httpclient

    app, server = live_server
    rows = rows_of(make_frame(7, seed=5))
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(NAME) and not client.is_model_ready("other-model")
        meta = client.get_model_metadata(NAME)
        assert meta["name"] == NAME and meta["versions"] == ["1", "2"]
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
            (c, DATATYPES[c], [-1, 1]) for c in COLUMNS
        ]
        assert [o["name"] for o in meta["outputs"]] == ["predictions", "probabilities", "classes"]
        assert client.get_server_metadata()["name"] == "ratchet"

        inputs = []
        for c in COLUMNS:
            values = np.array([r[c] for r in rows], dtype=object if c == "color" else None).reshape(-1, 1)
            t = httpclient.InferInput(c, list(values.shape), DATATYPES[c])
            t.set_data_from_numpy(values, binary_data=False)
            inputs.append(t)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=False)
                   for n in ("predictions", "probabilities", "classes")]
        result = client.infer(NAME, inputs, outputs=outputs, request_id="req-7")
        got = result.get_response()
        assert got["model_version"] == "1" and got["id"] == "req-7"
        predicted = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predictions").tolist()]
        proba = result.as_numpy("probabilities")
        # the same rows through /predict: the same answer
        want = httpx.post(f"{server.url}/predict", json={"rows": rows}).json()
        assert predicted == want["predictions"]
        assert proba.shape == (7, 2) and np.allclose(proba, np.asarray(want["probabilities"]), atol=1e-12)
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("classes")] == want["classes"]
        # asking for no outputs (tritonclient then asks for binary ones): JSON comes back, all three
        default = client.infer(NAME, inputs)
        assert default.as_numpy("probabilities").shape == (7, 2)
        # a version pinned in the path answers, whatever the traffic split says
        pinned = client.infer(NAME, inputs, model_version="2", outputs=outputs[:1])
        assert pinned.get_response()["model_version"] == "2"
        assert pinned.get_response()["parameters"]["alias"] == "challenger"
        # a version that is not loaded is the client's error, named
        with pytest.raises(Exception, match="not loaded"):
            client.infer(NAME, inputs, model_version="9")
    finally:
        client.close()
    # the same metrics as /predict, under the protocol's route
    text = httpx.get(f"{server.url}/metrics").text
    assert f'route="/v2/models/{NAME}/infer"' in text and 'status="200"' in text


def test_kserve_rest_client_infer(live_server):
    from kserve import InferInput, InferRequest
    from kserve.inference_client import InferenceRESTClient, RESTConfig

    _app, server = live_server
    rows = rows_of(make_frame(3, seed=8))

    async def run():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            assert await client.is_server_live(server.url)
            assert await client.is_server_ready(server.url)
            assert await client.is_model_ready(server.url, NAME)
            inputs = []
            for c in COLUMNS:
                t = InferInput(c, [3, 1], DATATYPES[c])
                t.set_data_from_numpy(np.array([r[c] for r in rows], dtype=object if c == "color" else None)
                                      .reshape(-1, 1), binary_data=False)
                inputs.append(t)
            headers: dict = {}
            res = await client.infer(server.url, InferRequest(NAME, inputs, request_id="k1"), model_name=NAME,
                                     response_headers=headers)
            return res, headers
        finally:
            await client.close()

    res, headers = asyncio.run(run())
    assert res.model_name == NAME and res.id == "k1" and headers["x-model-version"] == "1"
    out = {o.name: o for o in res.outputs}
    expected = SkModel("1", seed=1).predict(make_frame(3, seed=8))
    assert list(out["predictions"].data) == list(expected)


def test_infer_records_feedback_profiles_and_routes_like_predict(serve, good_rows):
    with serve() as env:
        r = env.client.post("/v2/models/ratchet/infer", json=v2_body(good_rows, parameters={"entity_key": "u1"}))
        assert r.status_code == 200, r.text
        body = r.json()
        rid = body["parameters"]["request_id"]
        assert r.headers["X-Request-ID"] == rid == body["id"] and r.headers["X-Model-Version"] == "1"
        # the request id takes feedback as /predict's does
        labels = list(true_label(make_frame(5, seed=99)))
        fb = env.client.post("/feedback", json={"request_id": rid, "labels": labels})
        assert fb.status_code == 200, fb.text
        assert env.rt.metrics.stats()["versions"]["1"]["feedback"] == 5
        assert env.rt.profiler.pending_rows == 5


@pytest.mark.parametrize(
    "mutate, status, words",
    [
        (lambda b: b["inputs"][0].update(shape=[5, 2]), 422, "'shape' must be"),
        (lambda b: b["inputs"][1].update(data=[1, 2]), 422, "needs 5 values"),
        (lambda b: b["inputs"].append(dict(b["inputs"][0])), 422, "given twice"),
        (lambda b: b["inputs"].pop(), 422, "flag"),  # a missing column: the validator names it
        (lambda b: b["inputs"][0].update(datatype="FLOAT"), 422, "'datatype' must be"),
        (lambda b: b.update(outputs=[{"name": "scores"}]), 400, "unknown output"),
        (lambda b: b.update(extra=1), 422, "unknown top-level"),
        (lambda b: [t.update(shape=[60, 1], data=t["data"] * 12) for t in b["inputs"]], 413, "max_rows=50"),
    ],
)
def test_bad_infer_requests_are_named(serve, good_rows, mutate, status, words):
    body = v2_body(good_rows)
    mutate(body)
    with serve() as env:
        r = env.client.post("/v2/models/ratchet/infer", json=body)
        assert r.status_code == status, r.text
        assert words in r.json()["error"] and r.json()["detail"] == r.json()["error"]


def test_wrong_model_binary_body_and_api_key(serve, good_rows):
    with serve(api_key="k") as env:
        c = env.client
        assert c.post("/v2/models/other/infer", json=v2_body(good_rows), headers={"X-API-Key": "k"}).status_code == 404
        r = c.post("/v2/models/ratchet/infer", content=b"\0\1", headers={"Content-Type": "application/octet-stream",
                                                                          "X-API-Key": "k"})
        assert r.status_code == 415
        assert c.post("/v2/models/ratchet/infer", json=v2_body(good_rows)).status_code == 401
        # no Content-Type at all (tritonclient sends none): read as JSON
        r = c.post("/v2/models/ratchet/infer", content=json.dumps(v2_body(good_rows)), headers={"X-API-Key": "k"})
        assert r.status_code == 200, r.text
        assert c.get("/v2/models/other").status_code == 404
        assert c.get("/v2/models/ratchet/versions/7/ready").status_code == 404


def test_not_ready_without_champion(serve):
    with serve(aliases={"champion": None}) as env:
        assert env.client.get("/v2/health/live").status_code == 200
        assert env.client.get("/v2/health/ready").status_code == 503
        assert env.client.get("/v2/models/ratchet/ready").status_code == 503


def test_estimated_accuracy_beside_live_accuracy(serve):
    models = {"1": CalibratedModel("1", seed=1)}
    frame = make_frame(200, seed=31)
    with serve() as env:
        env.provider.models["1"] = models["1"]
        env.client.post("/admin/reload", params={"force": True})
        rows, labels = rows_of(frame), list(true_label(frame))
        for i in range(0, 200, 50):
            r = env.client.post("/v2/models/ratchet/infer", json=v2_body(rows[i:i + 50]))
            assert r.status_code == 200, r.text
            rid = r.json()["parameters"]["request_id"]
            env.client.post("/feedback", json={"request_id": rid, "labels": labels[i:i + 50]})
        v = env.client.get("/stats").json()["versions"]["1"]
        # the estimate without labels lands within its own 3 sd of the accuracy the labels show
        assert v["estimated_accuracy"] is not None and v["live_accuracy"] is not None
        assert abs(v["estimated_accuracy"] - v["live_accuracy"]) < 3 * v["estimated_accuracy_sd"] + 0.02
        assert 'ratchet_estimated_accuracy{model_version="1"}' in env.client.get("/metrics").text
