"""/stats as the canary reads it: per-version counters, fallbacks, latency histogram, classes;
the model version and request id on every response."""

from __future__ import annotations

from ratchet.delivery.stats import quantile_ms, window

ADMIN = {"Authorization": "Bearer s3cret"}


def test_stats_count_routes_fallbacks_and_classes(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "3"}, admin_token="s3cret") as env:  # "3" raises
        c = env.client
        before = c.get("/stats").json()
        c.put("/admin/traffic", json={"challenger_share": 1.0}, headers=ADMIN)
        labels = []
        for _ in range(6):
            r = c.post("/predict", json={"rows": good_rows})
            assert r.status_code == 200 and r.json()["alias"] == "champion"
            labels += r.json()["predictions"]
        after = c.get("/stats").json()
        v1, v3 = after["versions"]["1"], after["versions"]["3"]
        assert (v3["routed"], v3["fallbacks"], v3["requests"], v3["model_errors"]) == (6, 6, 0, 6)
        assert (v1["routed"], v1["requests"], v1["server_errors"]) == (6, 6, 0)
        assert v1["predicted"] == {k: labels.count(k) for k in set(labels)}
        assert len(v1["latency_hist_ms"]) == len(after["latency_bounds_ms"]) + 1
        assert sum(v1["latency_hist_ms"]) == 6
        # what the canary makes of two reads
        w3, w1 = window(after, before, "3"), window(after, before, "1")
        assert (w3.routed, w3.failures, w3.error_rate) == (6, 6, 1.0)
        assert (w1.routed, w1.failures, w1.error_rate) == (6, 0, 0.0)
        p99 = quantile_ms(w1.latency_hist, after["latency_bounds_ms"], 0.99)
        assert 0 < p99 < 60_000


def test_server_errors_are_counted_per_version(serve, good_rows):
    with serve(aliases={"champion": "3"}) as env:
        assert env.client.post("/predict", json={"row": good_rows[0]}).status_code == 500
        v3 = env.client.get("/stats").json()["versions"]["3"]
        assert (v3["routed"], v3["requests"], v3["server_errors"], v3["errors"]) == (1, 1, 1, 1)


def test_every_response_names_model_version_and_request_id(serve, good_rows):
    with serve() as env:
        c = env.client
        responses = [
            c.get("/health"),
            c.get("/metrics"),
            c.get("/stats"),
            c.get("/nowhere"),
            c.post("/predict", json={"row": {"x1": "bad"}}),
            c.post("/predict", content=b"nope", headers={"Content-Type": "application/json"}),
            c.post("/feedback", json={"request_id": "unknown", "label": "yes"}),
            c.post("/admin/reload?force=maybe"),
        ]
        for r in responses:
            assert r.headers["X-Model-Version"] == "1", (r.request.url, r.headers)
            assert r.headers["X-Request-ID"], r.request.url
        for r in responses[3:]:
            assert 400 <= r.status_code < 500, (r.request.url, r.status_code)
            body = r.json()
            assert body["request_id"] == r.headers["X-Request-ID"] and body["detail"], body
