"""/predict, input validation, /health, /ready, /metrics, API key."""

from __future__ import annotations

import json

import pytest

from .helpers import SCHEMA, MemoryProvider, SkModel, make_frame, rows_of, serving_config

JSON = {"Content-Type": "application/json"}


def test_predict_many_rows(serve, good_rows):
    with serve() as env:
        r = env.client.post("/predict", json={"rows": good_rows})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["predictions"]) == len(good_rows)
        assert all(p in ("no", "yes") for p in body["predictions"])
        assert body["classes"] == ["no", "yes"]
        for probs in body["probabilities"]:
            assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-9
        assert body["model_version"] == "1" and body["alias"] == "champion"
        assert r.headers["X-Model-Version"] == "1"
        assert r.headers["X-Request-ID"] == body["request_id"] and body["request_id"]
        # the answer is the model's own
        expected = env.provider.models["1"].predict(make_frame(5, seed=99))
        assert body["predictions"] == list(expected)


def test_predict_single_row_and_request_id_echo(serve, good_rows):
    with serve() as env:
        r = env.client.post("/predict", json={"row": good_rows[0]}, headers={"X-Request-ID": "abc-123"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Request-ID"] == "abc-123"
        assert r.json()["request_id"] == "abc-123"
        assert len(r.json()["predictions"]) == 1
        # a request id with spaces/controls is replaced, not echoed
        r = env.client.post("/predict", json={"row": good_rows[0]}, headers={"X-Request-ID": "a b"})
        assert r.status_code == 200 and r.headers["X-Request-ID"] != "a b"


def test_int_as_float_and_float_as_int_accepted(serve, good_rows):
    row = dict(good_rows[0], x1=2, x2=7.0)
    with serve() as env:
        assert env.client.post("/predict", json={"row": row}).status_code == 200


def test_booleans_as_a_csv_writes_them_are_the_same_booleans(serve, good_rows):
    row = dict(good_rows[0])
    with serve() as env:
        post = env.client.post
        want = post("/predict", json={"rows": [dict(row, flag=True), dict(row, flag=False)]}).json()
        for yes, no in (("Yes", "No"), ("true", "false"), ("1", "0"), (1, 0), ("Y", "n")):
            r = post("/predict", json={"rows": [dict(row, flag=yes), dict(row, flag=no)]})
            assert r.status_code == 200, (yes, r.text)
            assert r.json()["probabilities"] == want["probabilities"], (yes, no)


def test_unknown_category_is_served_and_counted(serve, good_rows):
    with serve() as env:
        r = env.client.post("/predict", json={"rows": [dict(good_rows[0], color="purple"), good_rows[1]]})
        assert r.status_code == 200, r.text
        m = env.client.get("/metrics").text
        assert 'ratchet_unseen_categories_total{column="color",model_version="1"} 1.0' in m


def _bad_bodies(good):
    r0, r1 = good[0], good[1]

    def raw(s):  # literal JSON text (NaN/Infinity are not valid JSON, but Python clients send them)
        return s.replace("@ROW@", json.dumps(r0))

    return [
        # (id, body bytes, headers, status, words the message must contain)
        (
            "missing-field",
            json.dumps({"rows": [r0, {k: v for k, v in r1.items() if k != "x2"}]}),
            JSON,
            422,
            ["rows[1].x2", "missing"],
        ),
        ("float-as-string", json.dumps({"rows": [dict(r0, x1="1.5")]}), JSON, 422, ["rows[0].x1", "number"]),
        (
            "nan-literal",
            raw('{"rows": [@ROW@, {"x1": NaN, "x2": 3, "color": "red", "flag": true}]}'),
            JSON,
            422,
            ["rows[1].x1", "NaN"],
        ),
        (
            "infinity-literal",
            raw('{"rows": [{"x1": -Infinity, "x2": 3, "color": "red", "flag": true}]}'),
            JSON,
            422,
            ["rows[0].x1", "-Infinity"],
        ),
        (
            "overflow",
            raw('{"rows": [{"x1": 1e999, "x2": 3, "color": "red", "flag": true}]}'),
            JSON,
            422,
            ["rows[0].x1", "Infinity"],
        ),
        ("int-fraction", json.dumps({"rows": [dict(r0, x2=2.5)]}), JSON, 422, ["rows[0].x2", "integer"]),
        (
            "int-nan",
            raw('{"rows": [{"x1": 1, "x2": NaN, "color": "red", "flag": true}]}'),
            JSON,
            422,
            ["rows[0].x2", "NaN"],
        ),
        # "true"/"yes"/"1" are what a CSV holds, and what ingest accepts: only other text is refused
        ("bool-as-string", json.dumps({"rows": [dict(r0, flag="maybe")]}), JSON, 422, ["rows[0].flag"]),
        ("number-as-bool", json.dumps({"rows": [dict(r0, x1=True)]}), JSON, 422, ["rows[0].x1", "boolean"]),
        (
            "category-as-number",
            json.dumps({"rows": [dict(r0, color=3)]}),
            JSON,
            422,
            ["rows[0].color", "string"],
        ),
        ("null", json.dumps({"rows": [dict(r0, x1=None)]}), JSON, 422, ["rows[0].x1", "null"]),
        ("extra-field", json.dumps({"rows": [dict(r0, x9=1)]}), JSON, 422, ["rows[0].x9", "unknown"]),
        ("row-not-object", json.dumps({"rows": [r0, [1, 2]]}), JSON, 422, ["rows[1]"]),
        ("rows-not-list", json.dumps({"rows": r0}), JSON, 422, ["rows"]),
        ("empty-rows", json.dumps({"rows": []}), JSON, 422, ["empty"]),
        ("both-row-and-rows", json.dumps({"rows": [r0], "row": r0}), JSON, 422, ["exactly one"]),
        ("unknown-top-level", json.dumps({"rowz": [r0]}), JSON, 422, ["rowz"]),
        ("body-not-object", "[1, 2]", JSON, 422, ["object"]),
        ("bad-entity-key", json.dumps({"row": r0, "entity_key": {"a": 1}}), JSON, 422, ["entity_key"]),
        ("not-json", "{rows: nope", JSON, 400, ["JSON"]),
        ("empty-body", "", JSON, 400, ["empty"]),
        ("not-utf8", b'{"rows": ["\xff"]}', JSON, 400, ["UTF-8"]),
        (
            "wrong-content-type",
            json.dumps({"row": r0}),
            {"Content-Type": "text/plain"},
            415,
            ["application/json"],
        ),
        ("no-content-type", json.dumps({"row": r0}), {}, 415, ["application/json"]),
        ("too-many-rows", json.dumps({"rows": [r0] * 51}), JSON, 413, ["max_rows"]),
        ("body-too-large", json.dumps({"rows": [dict(r0, color="x" * 30_000)]}), JSON, 413, ["bytes"]),
        ("deep-nesting", "[" * 5000 + "]" * 5000, JSON, 400, []),
        ("huge-int-literal", '{"rows": [{"x2": ' + "9" * 5000 + "}]}", JSON, 400, ["JSON"]),
    ]


def test_bad_inputs_are_4xx_with_field_named_and_service_survives(serve, good_rows):
    with serve() as env:
        for case_id, body, headers, status, words in _bad_bodies(good_rows):
            data = body if isinstance(body, bytes) else body.encode()
            r = env.client.post("/predict", content=data, headers=headers)
            assert r.status_code == status, (case_id, r.status_code, r.text)
            detail = r.json()["detail"]
            for w in words:
                assert w in detail, (case_id, detail)
            assert r.headers.get("X-Request-ID"), case_id
            ok = env.client.post("/predict", json={"row": good_rows[0]})
            assert ok.status_code == 200, (case_id, ok.text)
        # field errors are also listed structurally
        r = env.client.post("/predict", json={"rows": [good_rows[0], dict(good_rows[1], x2="7")]})
        assert r.json()["errors"] == [{"row": 1, "field": "x2", "error": "expected an integer, got string"}]
        m = env.client.get("/metrics").text
        assert 'ratchet_request_errors_total{model_version="1",route="/predict",status="422"}' in m
        assert 'ratchet_request_errors_total{model_version="none",route="/predict",status="415"}' in m


def test_nullable_column_accepts_null(tmp_path, models):
    from fastapi.testclient import TestClient

    from ratchet.serving import create_app

    class Lenient(SkModel):
        def __init__(self):
            super().__init__("7", seed=7)
            self.schema = SCHEMA.model_copy(
                update={
                    "columns": [
                        c.model_copy(update={"max_null_share": 0.1}) if c.name == "color" else c
                        for c in SCHEMA.columns
                    ]
                }
            )

    app = create_app(
        MemoryProvider({"7": Lenient()}, {"champion": "7"}), serving_config(), tmp_path, watch_interval_s=None
    )
    row = rows_of(make_frame(1, 5))[0]
    with TestClient(app) as c:
        assert c.post("/predict", json={"row": dict(row, color=None)}).status_code == 200
        assert c.post("/predict", json={"row": dict(row, x1=None)}).status_code == 422


def test_health_ready_metrics(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        h = env.client.get("/health")
        assert h.status_code == 200
        assert h.json() == {
            "status": "ok",
            "ready": True,
            "champion": "1",
            "challenger": "2",
            "traffic": {"challenger_share": 0.0, "shadow": False},
            "last_error": None,
        }
        assert env.client.get("/ready").status_code == 200
        preds = []
        for _ in range(3):
            preds += env.client.post("/predict", json={"rows": good_rows}).json()["predictions"]
        m = env.client.get("/metrics")
        assert m.headers["content-type"].startswith("text/plain")
        text = m.text
        assert (
            'ratchet_requests_total{method="POST",model_version="1",route="/predict",status="200"} 3.0'
            in text
        )
        assert 'ratchet_request_latency_seconds_count{model_version="1",route="/predict"} 3.0' in text
        for label in ("no", "yes"):
            if preds.count(label):
                line = f'ratchet_predictions_total{{alias="champion",model_version="1",predicted_class="{label}"}}'
                assert f"{line} {float(preds.count(label))}" in text
        assert 'ratchet_model_loaded{alias="challenger",model_version="2"} 1.0' in text
        assert "ratchet_ready 1.0" in text


def test_not_ready_without_champion_then_ready_after_reload(serve, good_rows):
    with serve(aliases={}) as env:
        assert env.client.get("/health").json()["ready"] is False
        assert env.client.get("/ready").status_code == 503
        assert env.client.post("/predict", json={"row": good_rows[0]}).status_code == 503
        env.provider.set_alias("champion", "2")
        assert env.client.post("/admin/reload").status_code == 200
        assert env.client.get("/ready").status_code == 200
        assert env.client.post("/predict", json={"row": good_rows[0]}).json()["model_version"] == "2"


def test_apps_have_separate_registries(serve, good_rows, tmp_path, models):
    with serve() as a, serve() as b:
        a.client.post("/predict", json={"row": good_rows[0]})
        assert "ratchet_requests_total{" in a.client.get("/metrics").text
        assert 'route="/predict"' not in b.client.get("/metrics").text


def test_api_key(serve, good_rows):
    with serve(api_key="k3y") as env:
        r = env.client.post("/predict", json={"row": good_rows[0]})
        assert r.status_code == 401
        assert (
            env.client.post("/predict", json={"row": good_rows[0]}, headers={"X-API-Key": "nope"}).status_code
            == 403
        )
        assert (
            env.client.post("/predict", json={"row": good_rows[0]}, headers={"X-API-Key": "k3y"}).status_code
            == 200
        )
        assert env.client.get("/health").status_code == 200  # health needs no key


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_get_on_post_route_is_405(serve, path):
    with serve() as env:
        assert env.client.get(path).status_code == 405


def test_direct_predict_answers_as_the_fastapi_route(serve, good_rows):
    """The middleware serves POST /predict itself (no FastAPI routing layer); the FastAPI route
    runs the same handler: every answer, status, header and metric is the same either way."""
    cases = [
        ({"row": good_rows[0]}, {"X-API-Key": "k3y"}),
        ({"rows": good_rows}, {"X-API-Key": "k3y"}),
        ({"row": dict(good_rows[0], x1="a")}, {"X-API-Key": "k3y"}),  # 422
        ({"rows": [good_rows[0]] * 51}, {"X-API-Key": "k3y"}),  # 413
        ({"row": good_rows[0]}, {}),  # 401
        ({"row": good_rows[0]}, {"X-API-Key": "wrong"}),  # 403
    ]

    def answers(env) -> list:
        out = []
        for i, (body, headers) in enumerate(cases):
            r = env.client.post("/predict", json=body, headers={**headers, "X-Request-ID": f"req-{i}"})
            h = {k: r.headers.get(k) for k in ("content-type", "x-request-id", "x-model-version",
                                                "x-model-alias", "www-authenticate")}
            out.append((r.status_code, r.json(), h))
        r = env.client.post("/predict", content=b"{}", headers={"X-API-Key": "k3y", "Content-Type": "text/plain"})
        out.append((r.status_code, r.json()["detail"], None))  # 415
        metrics = [line for line in env.client.get("/metrics").text.splitlines()
                   if line.startswith(("ratchet_requests_total", "ratchet_request_errors_total"))]
        return out, sorted(metrics)

    with serve(api_key="k3y") as env:
        assert ("POST", "/predict") in env.app.state.direct_routes
        direct = answers(env)
    with serve(api_key="k3y") as env:
        env.app.state.direct_routes.clear()  # through FastAPI's router
        routed = answers(env)
    assert direct == routed
    statuses = [a[0] for a in direct[0]]
    assert statuses == [200, 200, 422, 413, 401, 403, 415]
    assert direct[0][4][2]["www-authenticate"] == "Bearer"
    assert direct[0][0][2]["x-model-alias"] == "champion" and direct[0][0][2]["x-request-id"] == "req-0"
