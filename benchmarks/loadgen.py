"""A bounded, low-overhead HTTP load generator for ``/predict`` (tests and the benchmark).

``python -m benchmarks.loadgen --url http://127.0.0.1:PORT --rows rows.jsonl`` sends
single-row requests from ``--connections`` keep-alive HTTP/1.1 connections (a closed loop:
each connection sends its next request when the last answer is in) for ``--duration``
seconds or ``--max-requests`` requests, whichever comes first, optionally rate-limited
(``--rate``, requests/s in all) and stopped early when ``--stop-file`` appears.
Each line of ``rows.jsonl`` is ``{"row": {...}, "label": ...}`` (label optional); with
``--feedback F`` a share F of answered requests gets its label posted to ``/feedback``
(request id from the ``X-Request-ID`` response header). ``--bodies FILE`` sends each line of
FILE as a request body verbatim instead (any JSON API, e.g. MLflow's ``/invocations`` with
``--path``). ``--warmup S`` sends load for S seconds first and counts nothing of it.
Prints one JSON object: counts by status, non-2xx, transport errors, requests/s, latency
percentiles (ms), requests by model version (``X-Model-Version``). Only loopback URLs are
accepted.

Built like wrk rather than like a client library: one asyncio event loop (uvloop when it is
installed) in a process of its own, raw HTTP/1.1 over ``asyncio.open_connection``, every
request encoded once up front, and of each response only the status line, ``Content-Length``
(or chunked framing), ``Connection``, ``X-Model-Version`` and ``X-Request-ID`` looked at.
Latency is taken per request with ``perf_counter_ns`` from the write to the last byte of the
answer. About 0.1 ms of CPU per request (a thread-per-connection httpx client: ~1 ms, which on
a small machine comes out of the server being measured). A connection that fails or that the server closes is counted (a transport error when
a request was lost) and opened again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TRANSPORT_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
_IDLE_REOPEN_S = 2.0  # a keep-alive connection idle this long is reopened (uvicorn closes at 5 s)


class _Closed(Exception):
    """The server closed the connection before answering (nothing of the answer was read)."""


class _Conn:
    """One keep-alive HTTP/1.1 connection: write a pre-encoded request, read one response."""

    __slots__ = ("host", "port", "reader", "writer", "last_used")

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def ensure_open(self) -> None:
        r = self.reader
        if r is not None and not r.at_eof() and time.monotonic() - self.last_used < _IDLE_REOPEN_S:
            return
        self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """(status, the few headers looked at, body). Raises on a broken connection."""
        await self.ensure_open()
        writer, reader = self.writer, self.reader
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise _Closed("connection closed before an answer") from None
            raise
        status, headers = _parse_head(head)
        length = headers.get(b"content-length")
        if length is not None:
            body = await reader.readexactly(int(length)) if length != b"0" else b""
        elif headers.get(b"transfer-encoding", b"").lower().endswith(b"chunked"):
            body = await _read_chunked(reader)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no framing: the body runs to the end of the connection
            body = await reader.read()
            headers[b"connection"] = b"close"
        conn_header = headers.get(b"connection", b"").lower()
        if conn_header == b"close" or (head.startswith(b"HTTP/1.0") and conn_header != b"keep-alive"):
            self.close()
        else:
            self.last_used = time.monotonic()
        return status, headers, body


_WANTED = (b"content-length", b"transfer-encoding", b"connection", b"x-model-version", b"x-request-id")


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            name = name.strip().lower()
            if name in _WANTED:
                headers[name] = value.strip()
    return status, headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(out)
        out.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _request(method: str, host_header: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in {"host", "content-type", "content-length"}]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_load(
    url: str,
    rows: list[dict] | None = None,
    *,
    bodies: list[bytes | str] | None = None,
    path: str | None = None,
    connections: int = 8,
    duration_s: float = 10.0,
    max_requests: int = 1_000_000,
    rate: float | None = None,
    feedback: float = 0.0,
    stop_file: Path | None = None,
    seed: int = 0,
    headers: dict[str, str] | None = None,
    warmup_s: float = 0.0,
    request_timeout_s: float = 30.0,
) -> dict:
    """Put load on ``url`` from this thread (its own event loop) and return the summary.

    ``rows`` (``[{"row": {...}, "label": ...}]``) are sent as ``{"row": ...}``; or ``bodies``,
    verbatim. ``path`` defaults to the URL's own path, else ``/predict``. Requests sent during
    the first ``warmup_s`` seconds are not counted (nor against ``max_requests``); a request
    still unanswered ``request_timeout_s`` after the end is given up (a transport error)."""
    parts = urlsplit(url)
    host = parts.hostname
    if host not in LOOPBACK:
        raise ValueError(f"load is only sent to this machine (127.0.0.1), not {host!r}")
    if (rows is None) == (bodies is None):
        raise ValueError("give rows or bodies")
    if not (rows or bodies):
        raise ValueError("no rows to send")
    if feedback and rows is None:
        raise ValueError("feedback needs rows with labels")
    if connections < 1:
        raise ValueError("connections must be at least 1")
    path = path or (parts.path if parts.path not in ("", "/") else "/predict")
    port = parts.port or 80
    host_header = parts.netloc
    extra = dict(headers or {})
    if rows is not None:
        payloads = [json.dumps({"row": r["row"]}).encode() for r in rows]
        labels = [r.get("label") for r in rows]
    else:
        payloads = [b if isinstance(b, bytes) else b.encode() for b in bodies]
        labels = [None] * len(payloads)
    requests = [_request("POST", host_header, path, p, extra) for p in payloads]
    loop = _new_loop()
    try:
        return loop.run_until_complete(_run(
            host, port, host_header, requests, labels, extra, connections=connections,
            duration_s=duration_s, max_requests=max_requests, rate=rate, feedback=feedback,
            stop_file=stop_file, seed=seed, warmup_s=warmup_s, request_timeout_s=request_timeout_s,
        ))
    finally:
        loop.close()


async def _run(host, port, host_header, requests, labels, extra, *, connections, duration_s, max_requests,
               rate, feedback, stop_file, seed, warmup_s, request_timeout_s) -> dict:
    statuses: Counter = Counter()
    versions: Counter = Counter()
    feedback_status: Counter = Counter()
    errors: Counter = Counter()
    latencies = array("q")  # ns
    sent = [0]
    stopped = [False]
    by_stop_file = [False]  # the stop file ended the load (not the duration or max_requests)
    per_conn_interval = connections / rate if rate else 0.0
    n_bodies = len(requests)
    perf_ns = time.perf_counter_ns

    t_warm = time.perf_counter()
    t_start = t_warm + max(warmup_s, 0.0)
    deadline = t_start + duration_s

    async def supervise(tasks: list) -> None:
        """Set ``stopped`` when the stop file appears; once the load is over, give requests
        still in flight ``request_timeout_s`` to finish, then cancel them (counted as errors)."""
        while not stopped[0] and time.perf_counter() < deadline:
            if stop_file is not None and stop_file.exists():
                stopped[0] = by_stop_file[0] = True
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(request_timeout_s)
        for t in tasks:
            t.cancel()

    async def worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        conn = _Conn(host, port)
        next_at = time.perf_counter() + rng.random() * per_conn_interval
        try:
            while True:
                now = time.perf_counter()
                if now >= deadline or stopped[0]:
                    return
                counted = now >= t_start
                if counted:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                if per_conn_interval:
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    next_at += per_conn_interval
                i = rng.randrange(n_bodies)
                hdrs: dict = {}
                refused = False
                t0 = perf_ns()
                try:
                    status, hdrs, _body = await conn.exchange(requests[i])
                except _TRANSPORT_ERRORS + (_Closed,) as e:
                    conn.close()
                    status = 0
                    if counted:
                        errors[type(e).__name__] += 1
                    refused = isinstance(e, ConnectionRefusedError)
                except asyncio.CancelledError:  # no answer request_timeout_s after the end
                    if counted:
                        statuses[0] += 1
                        errors["TimeoutError"] += 1
                        latencies.append(perf_ns() - t0)
                    raise
                dt = perf_ns() - t0
                if refused:
                    await asyncio.sleep(0.01)  # no server (yet): do not spin
                if not counted:
                    continue
                statuses[status] += 1
                latencies.append(dt)
                version = hdrs.get(b"x-model-version")
                if version:
                    versions[version.decode("latin-1")] += 1
                if status == 200 and feedback and labels[i] is not None and rng.random() < feedback:
                    feedback_status[await post_feedback(conn, hdrs, _body, labels[i])] += 1
        finally:
            conn.close()

    async def post_feedback(conn: _Conn, hdrs: dict, body: bytes, label) -> int:
        rid = hdrs.get(b"x-request-id")
        try:
            rid = rid.decode("latin-1") if rid else json.loads(body)["request_id"]
            payload = json.dumps({"request_id": rid, "label": label}).encode()
            status, _, _ = await conn.exchange(_request("POST", host_header, "/feedback", payload, extra))
        except _TRANSPORT_ERRORS + (_Closed, KeyError, TypeError):
            conn.close()
            return 0
        return status

    tasks = [asyncio.ensure_future(worker(k)) for k in range(connections)]
    supervisor = asyncio.ensure_future(supervise(tasks))
    try:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stopped[0] = True
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
    for outcome in outcomes:  # a bug here, not a failed request: say so
        if isinstance(outcome, Exception):
            raise outcome
    elapsed = max(time.perf_counter() - t_start, 0.0)
    lat = np.frombuffer(latencies, dtype=np.int64) / 1e6 if len(latencies) else np.zeros(0)
    total = sum(statuses.values())

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 3) if total else None

    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "stopped_by_file": by_stop_file[0],
        "requests_per_s": round(total / elapsed, 1) if elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "transport_errors": dict(errors),
        "feedback_statuses": {str(k): v for k, v in sorted(feedback_status.items())},
        "feedback_non_2xx": sum(v for k, v in feedback_status.items() if not 200 <= k < 300),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "p999_ms": pct(99.9),
        "max_ms": round(float(lat.max()), 3) if total else None,
        "by_version": dict(versions),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--rows", type=Path, help="JSON lines: {\"row\": {...}, \"label\": ...}")
    src.add_argument("--bodies", type=Path, help="one request body per line, sent verbatim")
    ap.add_argument("--path", default=None, help="request path (default: the URL's, else /predict)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds of load first, not counted")
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=None, help="requests/s in all (default: as fast as it can)")
    ap.add_argument("--feedback", type=float, default=0.0)
    ap.add_argument("--stop-file", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here too")
    args = ap.parse_args(argv)
    if args.rows is not None:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
        bodies = None
    else:
        rows = None
        bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line.strip()]
    result = run_load(
        args.url, rows, bodies=bodies, path=args.path, connections=args.connections,
        duration_s=args.duration, max_requests=args.max_requests, rate=args.rate, feedback=args.feedback,
        stop_file=args.stop_file, seed=args.seed, warmup_s=args.warmup,
    )
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
