"""One socket write per response (ratchet.serving.transport), under a real uvicorn."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from ratchet.serving import create_app
from ratchet.serving.transport import CoalescingTransport, http_protocol, service_options

from .helpers import MemoryProvider, mixed_rows, ratchet_predictor, serving_config, uvicorn_in_thread


class Recording:
    """A transport that records its writes."""

    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_writes_of_one_turn_go_out_as_one_in_order():
    async def scenario():
        real = Recording()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.write(b'{"a":1}')
        assert real.writes == []  # held until the end of this turn
        await asyncio.sleep(0)
        assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
        t.write(b"next")
        t.close()  # what is held goes out before the close
        assert real.writes[-1] == b"next" and real.closed
        await asyncio.sleep(0)
        assert len(real.writes) == 2  # the scheduled flush finds nothing left
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)

    asyncio.run(scenario())


def test_nothing_is_written_to_a_closed_transport():
    async def scenario():
        real = Recording()
        t = CoalescingTransport(real, asyncio.get_running_loop())
        t.write(b"late")
        real.closed = True  # the peer went away before the end of the turn
        await asyncio.sleep(0)
        assert real.writes == []

    asyncio.run(scenario())


@pytest.fixture
def served(tmp_path, monkeypatch):
    """The app (a fast-path champion, the same model in shadow at 100 %) under uvicorn with the
    service's protocol; every write that reaches the socket recorded."""
    chunks: list[bytes] = []
    flush = CoalescingTransport.flush

    def recording_flush(self):
        if self._held:
            chunks.append(b"".join(self._held))
        flush(self)

    monkeypatch.setattr(CoalescingTransport, "flush", recording_flush)
    models = {"1": ratchet_predictor("1"), "2": ratchet_predictor("2")}
    app = create_app(MemoryProvider(models, {"champion": "1", "challenger": "2"}), serving_config(),
                     tmp_path, watch_interval_s=None)
    with uvicorn_in_thread(app, http=http_protocol()) as server:
        yield f"http://127.0.0.1:{server.config.port}", app, chunks


def test_each_answer_is_one_write_and_the_shadow_still_runs(served, monkeypatch):
    url, app, chunks = served
    from ratchet.serving.predict import PredictHandler

    written_before_shadow: list[int] = []
    shadow = PredictHandler.shadow_predict

    def watched(self, *args):
        written_before_shadow.append(len(chunks))
        return shadow(self, *args)

    monkeypatch.setattr(PredictHandler, "shadow_predict", watched)
    rows = mixed_rows(12, seed=7, messy=False)
    with httpx.Client(base_url=url, timeout=10) as client:  # one keep-alive connection
        r = client.put("/admin/traffic", json={"challenger_share": 1.0, "shadow": True})
        assert r.status_code == 200, r.text
        assert app.state.ratchet.snapshot.champion.fast is not None  # answered inline, shadow after it
        chunks.clear()
        answers = [client.post("/predict", json={"row": row}) for row in rows]
        bad = client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    assert [a.status_code for a in answers] == [200] * len(rows) and bad.status_code == 400
    assert len(chunks) == len(rows) + 1  # head and body together, one write per answer
    for chunk, answer in zip(chunks, answers, strict=False):
        assert chunk.startswith(b"HTTP/1.1 200 OK\r\n") and chunk.endswith(answer.content)
    assert chunks[-1].startswith(b"HTTP/1.1 400") and chunks[-1].endswith(bad.content)
    # the shadow prediction of answer i runs after answer i is on the socket
    assert written_before_shadow == list(range(1, len(rows) + 1))
    rt = app.state.ratchet
    rt.flush()
    assert rt.metrics.stats()["versions"]["2"]["shadow_rows"] == len(rows)


@pytest.fixture
def service(tmp_path):
    """The app under uvicorn configured as the service runs it (``run_server``: no proxy-header
    middleware, so the protocol sees the app and its inline routes); ASGI calls recorded by path."""
    from ratchet.serving.app import ServingApp

    models = {"1": ratchet_predictor("1"), "2": ratchet_predictor("2")}
    app = create_app(MemoryProvider(models, {"champion": "1", "challenger": "2"}),
                     serving_config(inline_max_rows=8), tmp_path, watch_interval_s=None)
    asgi_paths: list[str] = []

    class Recorded(ServingApp):
        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                asgi_paths.append(scope["path"])
            await super().__call__(scope, receive, send)

    app.__class__ = Recorded
    with uvicorn_in_thread(app, **service_options()) as server:
        app.test_server = server  # its event loop: server.servers[0].get_loop()
        yield f"http://127.0.0.1:{server.config.port}", server.config.port, app, asgi_paths


def test_single_rows_are_answered_inline_and_batches_through_asgi(service):
    url, _port, app, asgi_paths = service
    rows = mixed_rows(20, seed=3, messy=False)
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").status_code == 200
        assert app.state.ratchet.is_started
        asgi_paths.clear()
        one = client.post("/predict", json={"row": rows[0]}, headers={"X-Request-ID": "abc-1"})
        batch = client.post("/predict", json={"rows": rows})  # over inline_max_rows: a worker thread
        bad = client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
        big = client.post("/predict", content=b"[" + b" " * 2_000_000 + b"]",
                          headers={"Content-Type": "application/json"})
    assert one.status_code == 200, one.text
    assert one.headers["x-request-id"] == "abc-1" and one.json()["request_id"] == "abc-1"
    assert one.headers["x-model-version"] == one.json()["model_version"] and "date" in one.headers
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == len(rows)
    assert bad.status_code == 400 and "JSON" in bad.json()["detail"]
    assert big.status_code == 413, big.text  # over uvicorn's high-water mark: the ASGI path reads it
    # the single row and the malformed body never reached ASGI; the batch and the large body did
    assert asgi_paths.count("/predict") == 2, asgi_paths
    rt = app.state.ratchet
    rt.flush()
    # counted once each, whichever path answered: 1 + 20 rows predicted
    assert sum(v["requests"] for v in rt.metrics.stats()["versions"].values()) == 2


def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(service):
    import socket

    _url, port, _app, asgi_paths = service
    rows = mixed_rows(3, seed=5, messy=False)
    import json

    def request(row, close=False) -> bytes:
        body = json.dumps({"row": row, "entity_key": None}).encode()
        extra = b"Connection: close\r\n" if close else b""
        return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
                + b"Content-Length: %d\r\nX-Request-ID: r%d\r\n\r\n" % (len(body), id(row) % 1000) + body)

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join([request(rows[0]), request(rows[1]), request(rows[2], close=True)]))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # the server closed the connection after the third answer
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3 and all(a.startswith(b"200 OK") for a in answers), data[:500]
    ids = [a.split(b"x-request-id: ", 1)[1].split(b"\r\n", 1)[0] for a in answers]
    assert ids == [b"r%d" % (id(r) % 1000) for r in rows]
    assert b"connection: close" in answers[2] and b"connection: close" not in answers[0]


def test_expect_continue_goes_through_asgi_and_is_answered(service):
    import json
    import socket

    _url, port, _app, asgi_paths = service
    body = json.dumps({"row": mixed_rows(1, seed=9, messy=False)[0]}).encode()
    asgi_paths.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), data[:300]
    assert asgi_paths == ["/predict"]


def test_single_rows_arriving_together_share_a_forward_and_each_gets_its_own_answer(service):
    """Requests whose bodies are whole in one turn of the event loop (here: the loop held busy while
    they arrive on 12 connections) are predicted by one forward of their model, and each answer is
    that request's own: its row's probabilities, its request id. A bad request among them gets its
    own 422 and costs the others nothing."""
    import json
    import socket
    import threading
    import time

    url, port, app, _asgi = service
    rows = mixed_rows(12, seed=21, messy=True)
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").status_code == 200
    champion = app.state.ratchet.snapshot.champion
    want = champion.model.predict_proba(champion.validator.validate(rows).frame)
    bodies = [json.dumps({"row": r}).encode() for r in rows] + [b'{"row": {"a": 1.0}}']
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in bodies]
    turns = app.state.ratchet.metrics.registry.get_sample_value
    before = turns("ratchet_inline_turn_requests_count") or 0.0
    before_sum = turns("ratchet_inline_turn_requests_sum") or 0.0
    shared, forward = [], champion.fast.predict_rows
    champion.fast.predict_rows = lambda each: shared.append(len(each)) or forward(each)
    try:
        deadline = time.monotonic() + 10
        while len(app.test_server.server_state.connections) < len(socks):  # every connection accepted first
            assert time.monotonic() < deadline, "the server did not accept the connections"
            time.sleep(0.01)
        holding = threading.Event()

        def hold() -> None:  # the loop busy while every request arrives: all are ready in its next turn
            holding.set()
            time.sleep(0.5)

        app.test_server.servers[0].get_loop().call_soon_threadsafe(hold)
        assert holding.wait(10)
        for i, (s, body) in enumerate(zip(socks, bodies, strict=True)):
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      b"X-Request-ID: t%d\r\nContent-Length: %d\r\n\r\n" % (i, len(body)) + body)
        answers = []
        for s in socks:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            answers.append(data)
    finally:
        for s in socks:
            s.close()
    heads_bodies = [a.split(b"\r\n\r\n", 1) for a in answers]
    for i, (head, body) in enumerate(heads_bodies[:-1]):
        assert head.startswith(b"HTTP/1.1 200 OK"), answers[i][:300]
        got = json.loads(body)
        assert got["request_id"] == f"t{i}"
        np.testing.assert_allclose(got["probabilities"][0], want[i], atol=1e-5)
    assert heads_bodies[-1][0].startswith(b"HTTP/1.1 422"), answers[-1][:300]
    # one turn answered the twelve good requests (the bad one was answered before any forward),
    # by one forward of twelve rows
    assert shared == [12]
    assert turns("ratchet_inline_turn_requests_count") - before == 1
    assert turns("ratchet_inline_turn_requests_sum") - before_sum == 12
