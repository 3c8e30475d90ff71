"""`ratchet gc`'s flow-run part against a Prefect API that fails (a real HTTP server on
loopback): a busy server's 5xx is retried, and one that stays down stops this part alone,
saying why, with what it deleted kept."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ratchet.runtime import gc
from ratchet.runtime.context import load_context
from tests.conftest import CONFIG_FILES


def _server(answers: list[tuple[int, list[str]]]):
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status, ids = answers.pop(0) if answers else (503, [])
            body = json.dumps({"deleted": ids}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def test_a_busy_prefect_server_is_retried_and_a_down_one_stops_this_part_alone(home, monkeypatch):
    monkeypatch.setattr(gc.time, "sleep", lambda s: None)  # the backoff's waits, not its logic
    ctx = load_context(CONFIG_FILES, home=str(home), overrides={"retention": {"flow_run_age_days": 1}})
    full = [f"run-{i}" for i in range(gc.BULK)]
    server, calls = _server([(500, []), (200, full), (200, ["last"])])
    try:
        done = gc.prune_flow_runs(ctx, f"http://127.0.0.1:{server.server_port}/api", now=2_000_000_000)
    finally:
        server.shutdown()
    assert done.skipped is None and done.counts == {"flow runs": gc.BULK + 1} and len(calls) == 3
    flt = calls[0]["flow_runs"]
    assert flt["end_time"]["before_"].startswith("2033-05-17") and "RUNNING" not in flt["state"]["type"]["any_"]

    server, calls = _server([(200, full)])  # then 503 for good
    try:
        stopped = gc.prune_flow_runs(ctx, f"http://127.0.0.1:{server.server_port}/api")
    finally:
        server.shutdown()
    assert stopped.counts == {"flow runs": gc.BULK} and "stopped after 20 flow runs" in stopped.skipped
    assert "503" in stopped.skipped and len(calls) == 1 + 6
    assert gc.prune_flow_runs(ctx, None).skipped == "no Prefect server running"
