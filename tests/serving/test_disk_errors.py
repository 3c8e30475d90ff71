"""The service on a home that goes read-only or fills up: predictions and feedback go on
(the champion keeps answering), the failing profile write is logged once, naming the folder,
a traffic change answers 503 naming the file, and profiling resumes when the disk does."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from ratchet.serving import create_app
from tests.diskfull import TROUBLES, small_disk

from .helpers import MemoryProvider, make_frame, rows_of, serving_config


@pytest.fixture(params=sorted(TROUBLES))
def trouble(request):
    return request.param


@contextmanager
def _served(tmp_path, models, process: bool = False):
    """The app over the champion, its state on a small disk; ``process``: whylogs in a worker
    process, as ``python -m ratchet.serving`` runs it."""
    with small_disk(tmp_path / "disk", size="8m") as disk:
        cfg = serving_config(profile_batch_rows=100_000, profile_flush_s=60.0, profile_window_s=3600.0)
        app = create_app(MemoryProvider(models, {"champion": "1"}), cfg, disk.path / "serving",
                         watch_interval_s=None, admin_token="t0ken", profile_process=process)
        with TestClient(app) as client:
            yield disk, app.state.ratchet, client


@pytest.fixture
def served(tmp_path, models):
    with _served(tmp_path, models) as env:
        yield env


def _traffic(rt, client, rows):
    """Predictions with feedback on each; every answer from the champion, none a 5xx."""
    for i in range(0, len(rows), 5):
        r = client.post("/predict", json={"rows": rows[i:i + 5]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == "1" and body["alias"] == "champion"
        f = client.post("/feedback", json={"request_id": body["request_id"], "labels": ["yes"] * len(body["predictions"])})
        assert f.status_code == 200, f.text


def test_the_champion_is_served_while_the_home_cannot_be_written(served, trouble, caplog):
    disk, rt, client = served
    rows = rows_of(make_frame(60, seed=5))
    _traffic(rt, client, rows[:20])
    assert len(rt.flush()) == 1  # the disk works: a window profile written
    reason, break_disk, mend_disk = TROUBLES[trouble]
    break_disk(disk)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ratchet.serving"):
        for _ in range(3):  # three flushes on the bad disk: one error in the log
            _traffic(rt, client, rows[20:40])
            assert rt.flush() == []
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert str(disk.path / "serving" / "profiles") in message and reason in message, message
    assert client.get("/ready").status_code == 200

    r = client.put("/admin/traffic", json={"challenger_share": 0.5}, headers={"Authorization": "Bearer t0ken"})
    assert r.status_code == 503, r.text
    assert reason in r.json()["detail"] and str(disk.path / "serving") in r.json()["detail"]
    assert rt.snapshot.traffic.challenger_share == 0.0  # unchanged

    mend_disk(disk)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ratchet.serving"):
        _traffic(rt, client, rows[40:])
        written = rt.flush()
    assert len(written) == 1 and written[0].is_file()
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_the_profiling_worker_process_says_it_once_too(tmp_path, models, capfd, caplog):
    with _served(tmp_path, models, process=True) as env:  # started here: the worker's stderr is capfd's
        _worker_says_it_once(*env, capfd, caplog)


def _worker_says_it_once(disk, rt, client, capfd, caplog):
    rows = rows_of(make_frame(40, seed=6))
    _traffic(rt, client, rows[:20])
    assert len(rt.flush()) == 1 and rt.profiler.worker_pid is not None
    disk.fill()
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="ratchet.serving"):
        for _ in range(3):
            _traffic(rt, client, rows[20:])
            assert rt.flush() == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # the worker said it
    said = capfd.readouterr().err  # the worker's stderr is this process's
    assert said.count("cannot write live profiles") == 1 and "No space left on device" in said, said
    assert rt.profiler.worker_pid is not None  # and it lives on
    disk.free()
    _traffic(rt, client, rows[:5])
    assert len(rt.flush()) == 1
