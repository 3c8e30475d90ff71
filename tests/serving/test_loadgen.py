"""The load generator (benchmarks.loadgen) against real servers on loopback: a uvicorn app
started here, and a raw asyncio server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from benchmarks import loadgen
from ratchet.core.files import free_port
from ratchet.demo.traffic import BackgroundServer


class CountingApp:
    """A plain ASGI app: POST /predict answers 200 with X-Model-Version "1" for an even ``a``,
    "2" for an odd one, 503 for a body with ``"fail"``; every ``close_every``-th answer says
    ``Connection: close``. POST /feedback records what it gets."""

    def __init__(self, close_every: int = 0):
        self.close_every = close_every
        self.requests = 0
        self.feedback: list[dict] = []
        self.clients: set = set()
        self.issued: dict[str, int] = {}  # request id -> a
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        obj = json.loads(body)
        headers = [(b"content-type", b"application/json")]
        if scope["path"] == "/feedback":
            with self.lock:
                self.feedback.append(obj)
            status, out = 200, b"{}"
        else:
            with self.lock:
                self.requests += 1
                n = self.requests
                self.clients.add(tuple(scope["client"]))
            a = obj["row"]["a"]
            rid = f"r{n}"
            with self.lock:
                self.issued[rid] = a
            status = 503 if "fail" in obj["row"] else 200
            headers += [(b"x-model-version", b"1" if a % 2 == 0 else b"2"), (b"x-request-id", rid.encode())]
            if self.close_every and n % self.close_every == 0:
                headers.append((b"connection", b"close"))
            out = json.dumps({"request_id": rid}).encode()
        headers.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})


@pytest.fixture
def counting_server():
    servers = []

    def start(**kw):
        app = CountingApp(**kw)
        server = BackgroundServer(app).start()
        servers.append(server)
        return app, server.url

    yield start
    for s in servers:
        s.stop()


def test_counts_statuses_versions_and_non_2xx(counting_server):
    app, url = counting_server()
    bodies = [json.dumps({"row": {"a": 0}}), json.dumps({"row": {"a": 1}}), json.dumps({"row": {"a": 2, "fail": 1}})]
    r = loadgen.run_load(url, bodies=bodies, path="/predict", connections=4, duration_s=30, max_requests=300)
    assert r["requests"] == 300 == app.requests  # exactly max_requests sent, every one counted
    assert set(r["statuses"]) == {"200", "503"} and sum(r["statuses"].values()) == 300
    assert r["non_2xx"] == r["statuses"]["503"] > 0
    assert r["transport_errors"] == {}
    assert set(r["by_version"]) == {"1", "2"} and sum(r["by_version"].values()) == 300
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["requests_per_s"] > 0


def test_rows_with_feedback(counting_server):
    app, url = counting_server()
    rows = [{"row": {"a": i}, "label": i % 3} for i in range(10)] + [{"row": {"a": 99}}]  # one without a label
    r = loadgen.run_load(url, rows, connections=3, duration_s=30, max_requests=120, feedback=1.0)
    assert r["statuses"] == {"200": 120} and r["non_2xx"] == 0
    assert r["feedback_non_2xx"] == 0
    n_fb = r["feedback_statuses"]["200"]
    assert n_fb == len(app.feedback) and 90 <= n_fb < 120  # ~1/11 of the rows have no label
    for fb in app.feedback:  # the request id of the answer it labels (from X-Request-ID), its row's label
        assert fb["label"] == app.issued[fb["request_id"]] % 3


def test_connection_closed_by_the_server_is_reopened(counting_server):
    app, url = counting_server(close_every=3)
    bodies = [json.dumps({"row": {"a": i}}) for i in range(5)]
    r = loadgen.run_load(url, bodies=bodies, connections=2, duration_s=30, max_requests=60)
    assert r["statuses"] == {"200": 60} and r["transport_errors"] == {}
    assert len(app.clients) >= 60 // 3  # a new connection (client port) after every close


class RawServer:
    """HTTP/1.1 by hand: answers 200 with Content-Length, or chunked for every 2nd request;
    drops the connection without an answer on every ``drop_every``-th request."""

    def __init__(self, drop_every: int = 0, hang_every: int = 0):
        self.drop_every = drop_every
        self.hang_every = hang_every
        self.port = free_port()
        self.requests = 0
        self.dropped = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                self.requests += 1
                if self.drop_every and self.requests % self.drop_every == 0:
                    self.dropped += 1
                    writer.close()
                    return
                if self.hang_every and self.requests % self.hang_every == 0:
                    await asyncio.sleep(3600)  # never answers
                if self.requests % 2:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Model-Version: 7\r\n\r\n{}")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Model-Version: 7\r\n\r\n"
                                 b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_dropped_connection_is_a_transport_error_and_the_load_goes_on():
    with RawServer(drop_every=5) as srv:
        r = loadgen.run_load(f"http://127.0.0.1:{srv.port}", bodies=["{}"], connections=2, duration_s=30,
                             max_requests=100)
    assert r["requests"] == 100 == srv.requests
    assert r["statuses"] == {"0": srv.dropped, "200": 100 - srv.dropped} and srv.dropped == 20
    assert sum(r["transport_errors"].values()) == srv.dropped
    assert r["non_2xx"] == srv.dropped
    assert r["by_version"] == {"7": 100 - srv.dropped}  # chunked answers parsed too
    assert srv.connections >= 1 + srv.dropped // 2  # each drop: a new connection


def test_unanswered_request_is_given_up_after_the_end():
    with RawServer(hang_every=10) as srv:
        r = loadgen.run_load(f"http://127.0.0.1:{srv.port}", bodies=["{}"], connections=1, duration_s=1.0,
                             request_timeout_s=0.5)
    # the one connection hangs on its 10th request: given up (it returned) 0.5 s after the 1 s of
    # load, counted as one timeout; a lower bound on its wait, never an upper one (a busy machine)
    assert r["statuses"] == {"0": 1, "200": 9} and r["transport_errors"] == {"TimeoutError": 1}
    assert srv.requests == 10 and not r["stopped_by_file"]
    assert r["max_ms"] > 500


def test_rate_limit_and_stop_file(counting_server, tmp_path):
    _, url = counting_server()
    stop = tmp_path / "stop"
    threading.Timer(1.5, stop.touch).start()
    r = loadgen.run_load(url, bodies=['{"row": {"a": 1}}'], connections=4, duration_s=60, rate=40, stop_file=stop)
    assert r["stopped_by_file"]  # the stop file ended it, not the 60 s
    assert 0 < r["requests"] <= 40 * r["seconds"] + 8  # at most 40/s over the load's own clock
    assert r["non_2xx"] == 0


def test_warmup_is_not_counted(counting_server):
    app, url = counting_server()
    r = loadgen.run_load(url, bodies=['{"row": {"a": 2}}'], connections=2, duration_s=0.5, warmup_s=0.5)
    assert 0 < r["requests"] < app.requests  # the server answered the warmup's requests too


def test_refuses_other_hosts_and_empty_input():
    with pytest.raises(ValueError, match="only sent to this machine"):
        loadgen.run_load("http://example.com", [{"row": {}}])
    with pytest.raises(ValueError, match="no rows"):
        loadgen.run_load("http://127.0.0.1:1", [])
    with pytest.raises(ValueError, match="feedback needs rows"):
        loadgen.run_load("http://127.0.0.1:1", bodies=["{}"], feedback=0.5)


def test_connection_refused_is_counted_not_raised():
    r = loadgen.run_load(f"http://127.0.0.1:{free_port()}", bodies=["{}"], connections=2, duration_s=5,
                         max_requests=10)
    assert r["requests"] == 10 and r["statuses"] == {"0": 10} and r["non_2xx"] == 10
    assert sum(r["transport_errors"].values()) == 10 and r["by_version"] == {}


def test_cli_bodies_path_and_out(counting_server, tmp_path, capsys):
    app, url = counting_server()
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"row": {"a": 1}}\n\n{"row": {"a": 4}}\n')
    out = tmp_path / "out.json"
    assert loadgen.main(["--url", f"{url}/predict", "--bodies", str(bodies), "--connections", "2",
                         "--max-requests", "25", "--duration", "30", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result == json.loads(capsys.readouterr().out)
    assert result["statuses"] == {"200": 25} and app.requests == 25
    assert sum(result["by_version"].values()) == 25 and set(result["by_version"]) <= {"1", "2"}
