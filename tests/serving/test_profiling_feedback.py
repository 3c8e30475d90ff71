"""Live profiles persisted off the request path; feedback -> live accuracy."""

from __future__ import annotations

import time

from whylogs.core import DatasetProfileView

from .helpers import make_frame, rows_of, serving_config, true_label


def _count(view: DatasetProfileView, column: str) -> int:
    return int(view.get_column(column).to_summary_dict()["counts/n"])


def test_profiles_persisted_after_flush(serve, good_rows):
    with serve(aliases={"champion": "1", "challenger": "2"}) as env:
        env.client.put("/admin/traffic", json={"challenger_share": 0.5})
        served = {"1": 0, "2": 0}
        for i in range(20):
            b = env.client.post("/predict", json={"rows": good_rows, "entity_key": f"k{i}"}).json()
            served[b["model_version"]] += len(good_rows)
        assert not (env.state_dir / "profiles").exists()  # nothing profiled on the request path
        written = env.rt.flush()
        assert written
        for version, n in served.items():
            files = list((env.state_dir / "profiles" / version).glob("*.bin"))
            if not n:
                continue
            assert len(files) == 1 and files[0].name.endswith("Z.bin")
            view = DatasetProfileView.deserialize(files[0].read_bytes())
            assert {"x1", "x2", "color", "flag", "prediction", "prediction_confidence"} <= set(
                view.get_columns()
            )
            assert _count(view, "x1") == n
        # a second flush merges into the same window file
        env.client.post("/predict", json={"rows": good_rows, "entity_key": "k0"})
        version0 = env.client.post("/predict", json={"row": good_rows[0], "entity_key": "k0"}).json()[
            "model_version"
        ]
        env.rt.flush()
        (f,) = (env.state_dir / "profiles" / version0).glob("*.bin")
        assert (
            _count(DatasetProfileView.deserialize(f.read_bytes()), "x1")
            == served[version0] + len(good_rows) + 1
        )
        assert f'ratchet_profile_rows_total{{model_version="{version0}"}}' in env.client.get("/metrics").text


def test_background_worker_flushes_by_batch_size_and_on_shutdown(serve, good_rows):
    cfg = serving_config(max_rows=50, profile_batch_rows=10, profile_flush_s=60.0, profile_window_s=3600.0)
    with serve(cfg=cfg) as env:
        env.client.post("/predict", json={"rows": good_rows * 2})  # 10 rows: a full micro-batch
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list((env.state_dir / "profiles" / "1").glob("*.bin")):
            time.sleep(0.05)
        assert list((env.state_dir / "profiles" / "1").glob("*.bin"))
        env.client.post("/predict", json={"rows": good_rows[:3]})  # below the batch size
    # leaving the client runs the lifespan shutdown, which flushes
    (f,) = (env.state_dir / "profiles" / "1").glob("*.bin")
    assert _count(DatasetProfileView.deserialize(f.read_bytes()), "x1") == 13


def test_feedback_live_accuracy(serve):
    df = make_frame(40, seed=123)
    truth = list(true_label(df))
    with serve() as env:
        rids, preds = [], []
        for row in rows_of(df):
            b = env.client.post("/predict", json={"row": row}).json()
            rids.append(b["request_id"])
            preds.append(b["predictions"][0])
        for rid, y in zip(rids, truth, strict=True):
            r = env.client.post("/feedback", json={"request_id": rid, "label": y})
            assert r.status_code == 200, r.text
        expected = sum(p == y for p, y in zip(preds, truth, strict=True)) / len(truth)
        s = env.client.get("/stats").json()["versions"]["1"]
        assert s["feedback"] == 40 and abs(s["live_accuracy"] - expected) < 1e-9
        assert expected > 0.7  # the tiny model is a real model
        assert f'ratchet_live_accuracy{{model_version="1"}} {expected}' in env.client.get("/metrics").text
        # errors
        assert env.client.post("/feedback", json={"request_id": rids[0], "label": "yes"}).status_code == 409
        assert env.client.post("/feedback", json={"request_id": "nope", "label": "yes"}).status_code == 404
        b = env.client.post("/predict", json={"rows": rows_of(df.head(3))}).json()
        assert (
            env.client.post("/feedback", json={"request_id": b["request_id"], "label": "maybe"}).status_code
            == 422
        )
        assert (
            env.client.post(
                "/feedback", json={"request_id": b["request_id"], "label": "yes", "row": 3}
            ).status_code
            == 422
        )
        r = env.client.post("/feedback", json={"request_id": b["request_id"], "labels": ["yes", "no", "yes"]})
        assert r.status_code == 200 and r.json()["versions"]["1"]["total"] == 3
        assert (
            env.client.post(
                "/feedback", content=b"nope", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )


def test_feedback_store_is_bounded(serve, good_rows):
    with serve(feedback_capacity=5) as env:
        rids = [
            env.client.post("/predict", json={"row": good_rows[0]}).json()["request_id"] for _ in range(8)
        ]
        assert env.client.get("/stats").json()["feedback_tracked"] == 5
        assert env.client.post("/feedback", json={"request_id": rids[0], "label": "yes"}).status_code == 404
        assert env.client.post("/feedback", json={"request_id": rids[-1], "label": "yes"}).status_code == 200
