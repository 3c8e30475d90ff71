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


def test_profiles_in_a_worker_process(serve, good_rows):
    """``profile_process=True`` (python -m ratchet.serving): whylogs runs in a worker process; the
    files, merges and metrics are the same, and a worker that dies is started again."""
    import os
    import signal

    with serve(aliases={"champion": "1", "challenger": "2"}, profile_process=True) as env:
        prof = env.rt.profiler
        pid = prof.worker_pid
        assert pid is not None and pid != os.getpid()
        env.client.put("/admin/traffic", json={"challenger_share": 0.5})
        served = {"1": 0, "2": 0}
        for i in range(12):
            b = env.client.post("/predict", json={"rows": good_rows, "entity_key": f"k{i}"}).json()
            served[b["model_version"]] += len(good_rows)
        written = env.rt.flush()
        assert {p.parent.name for p in written} == {v for v, n in served.items() if n}
        for version, n in served.items():
            if n:
                (f,) = (env.state_dir / "profiles" / version).glob("*.bin")
                view = DatasetProfileView.deserialize(f.read_bytes())
                assert _count(view, "x1") == n and "prediction_confidence" in view.get_columns()
        assert prof.worker_pid == pid  # one worker for every pass

        os.kill(pid, signal.SIGKILL)  # the worker dies: the next pass starts another
        deadline = time.monotonic() + 10
        while prof.worker_pid is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        b = env.client.post("/predict", json={"row": good_rows[0], "entity_key": "k0"}).json()
        version0 = b["model_version"]
        assert env.rt.flush()
        assert prof.worker_pid not in (None, pid)
        (f,) = (env.state_dir / "profiles" / version0).glob("*.bin")
        # the new worker merged the window file the first one wrote
        assert _count(DatasetProfileView.deserialize(f.read_bytes()), "x1") == served[version0] + 1
        metrics = env.client.get("/metrics").text
        assert f'ratchet_profile_rows_total{{model_version="{version0}"}} {served[version0] + 1}.0' in metrics
        worker = prof._worker.proc
    assert worker.poll() is not None  # shutdown ends the worker


def test_join_of_mixed_parts(tmp_path):
    """Single-row validated parts (the usual case), a DataFrame part and parts with other columns
    are joined into one frame, in order, a missing value where a part lacked a column."""
    import gc

    import numpy as np
    import pandas as pd

    from ratchet.serving.profiler import LiveProfiler, _build_frame, _join
    from ratchet.serving.validation import ValidatedBatch

    prof = LiveProfiler(tmp_path)
    names = ["a", "b"]
    for i in range(2):
        prof.record("1", ValidatedBatch({"a": [float(i)], "b": ["x"]}, names, 1), [i], np.array([0.5 + i / 10]))
    prof.record("1", pd.DataFrame({"a": [7.0, 8.0], "z": ["q", "r"]}), [7, 8], np.array([[0.9], [0.8]]))
    prof.record("1", ValidatedBatch({"a": [5.0, 6.0], "b": ["y", "w"]}, ["a", "b"], 2), [5, 6], [0.1, 0.2])
    prof.record("1", ValidatedBatch({"a": [2.0], "b": ["x"]}, names, 1), [2], np.array([0.7]))
    assert prof.pending_rows == 7
    for _ in range(3):  # a tuple is untracked once the tuples in it are: one level per pass
        gc.collect()
    assert not any(gc.is_tracked(item) for item in prof._buf if item[2] is not None)  # plain tuples

    cols, order, preds, conf = _join(prof._buf)
    assert order == ["a", "b", "z"]
    assert cols == {"a": [0.0, 1.0, 7.0, 8.0, 5.0, 6.0, 2.0], "b": ["x", "x", None, None, "y", "w", "x"],
                    "z": [None, None, "q", "r", None, None, None]}
    assert preds == [0, 1, 7, 8, 5, 6, 2]
    assert np.allclose(conf, [0.5, 0.6, 0.9, 0.8, 0.1, 0.2, 0.7])
    df = _build_frame(cols, order, preds, conf)
    assert list(df.columns) == ["a", "b", "z", "prediction", "prediction_confidence"] and len(df) == 7


def test_feedback_entries_leave_the_collectors_view():
    """100,000 remembered requests must not make every full GC pass scan them: flat tuples of
    plain values, untracked by the young collections (before they reach the oldest generation)."""
    import gc

    from ratchet.serving.feedback import FeedbackStore

    store = FeedbackStore(10)
    store.record("r1", "1", ["yes"], ("no", "yes"))
    store.record("r2", "1", ["no", "yes"], ["no", "yes"])
    store.record_shadow("r2", "2", ["no", "no"])
    gc.collect(0)
    gc.collect(1)  # young collections only: what an entry meets before the oldest generation
    assert not any(gc.is_tracked(e) for e in store._entries.values())
    assert store.resolve("r2", {1: "yes"}) == [("1", True), ("2", False)]
    assert store.resolve("r1", {0: "no"}) == [("1", False)]


def test_a_pass_goes_to_the_worker_as_the_bytes_the_request_path_encoded(tmp_path, monkeypatch):
    """With a worker process the recording thread encodes every ENCODE_ITEMS items (marshal;
    pickle for what marshal cannot write), so a pass is one raw write and the server's GIL never
    waits for the profiler thread to pickle; every row of every version arrives, DataFrame rows
    and numpy values included."""
    import numpy as np
    import pandas as pd

    from ratchet.serving import profiler as p
    from ratchet.serving.validation import ValidatedBatch

    plain = [(1.5, "1", ("a", "b"), ((1.0, "x"), (None, "y")), ("yes", "no"), (0.75, 0.5))]
    odd = [(2.5, "2", None, pd.DataFrame({"a": [3.0]}), (np.int64(1),), (0.9,))]
    wire = p._encode(plain) + p._encode(odd)
    assert [bytes(wire[:1]), bytes(wire[p._RECORD.size + p._RECORD.unpack_from(wire)[1]:][:1])] == [b"M", b"P"]
    back = p._decode(wire)
    assert back[0] == plain[0] and back[1][3].equals(odd[0][3]) and back[1][4] == (1,)

    sent: list[int] = []
    call = p._WorkerProcess.call

    def counting(self, data):
        sent.append(len(data))
        return call(self, data)

    monkeypatch.setattr(p._WorkerProcess, "call", counting)
    prof = p.LiveProfiler(tmp_path, batch_rows=10**6, flush_s=3600, process=True)
    prof.start()
    try:
        names = ["a", "b"]
        for i in range(1007):
            prof.record(str(1 + i % 2), ValidatedBatch({"a": [float(i)], "b": ["x"]}, names, 1), [i % 3],
                        np.array([0.5]))
        prof.record("1", pd.DataFrame({"a": [7.0, 8.0], "b": ["q", "r"]}), [7, 8], np.array([[0.9], [0.8]]))
        assert len(prof._buf) == 1008 % p.ENCODE_ITEMS and len(prof._wire) > 0  # encoded in 500s
        written = prof.flush()
        assert len(sent) == 1 and sent[0] > 0 and prof.worker_pid is not None and not prof._wire
        counts = {path.parent.name: _count(DatasetProfileView.deserialize(path.read_bytes()), "a") for path in written}
        assert counts == {"1": 504 + 2, "2": 503}
    finally:
        prof.stop(flush=False)
