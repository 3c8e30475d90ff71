"""A bounded HTTP load generator for ``/predict`` (tests and the benchmark).

``python -m ratchet.serving.loadgen --url http://127.0.0.1:PORT --rows rows.jsonl`` sends
single-row requests from ``--connections`` keep-alive connections (one thread each) for
``--duration`` seconds or ``--max-requests`` requests, whichever comes first, optionally
rate-limited (``--rate``, requests/s in all) and stopped early when ``--stop-file`` appears.
Each line of ``rows.jsonl`` is ``{"row": {...}, "label": ...}`` (label optional); with
``--feedback F`` a share F of answered requests gets its label posted to ``/feedback``.
Prints one JSON object: counts by status, non-2xx, requests/s, latency percentiles (ms),
requests by model version. Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run_load(
    url: str,
    rows: list[dict],
    *,
    connections: int = 8,
    duration_s: float = 10.0,
    max_requests: int = 1_000_000,
    rate: float | None = None,
    feedback: float = 0.0,
    stop_file: Path | None = None,
    seed: int = 0,
    headers: dict[str, str] | None = None,
) -> dict:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"load is only sent to this machine (127.0.0.1), not {host!r}")
    if not rows:
        raise ValueError("no rows to send")
    lock = threading.Lock()
    statuses: Counter = Counter()
    versions: Counter = Counter()
    feedback_status: Counter = Counter()
    errors: Counter = Counter()
    latencies: list[float] = []
    sent = [0]
    t_start = time.perf_counter()
    deadline = t_start + duration_s
    per_conn_interval = connections / rate if rate else 0.0
    bodies = [json.dumps({"row": r["row"]}).encode() for r in rows]
    labels = [r.get("label") for r in rows]

    def worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        next_at = time.perf_counter() + rng.random() * per_conn_interval
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        with httpx.Client(base_url=url, timeout=30.0, headers=hdrs) as client:
            while True:
                now = time.perf_counter()
                if now >= deadline or (stop_file is not None and stop_file.exists()):
                    return
                with lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                if per_conn_interval:
                    if next_at > now:
                        time.sleep(next_at - now)
                    next_at += per_conn_interval
                i = rng.randrange(len(bodies))
                t0 = time.perf_counter()
                try:
                    r = client.post("/predict", content=bodies[i])
                    status = r.status_code
                except httpx.HTTPError as e:
                    status = 0
                    with lock:
                        errors[type(e).__name__] += 1
                dt = time.perf_counter() - t0
                version = r.headers.get("x-model-version") if status else None
                with lock:
                    statuses[status] += 1
                    latencies.append(dt)
                    if version:
                        versions[version] += 1
                if status == 200 and feedback and labels[i] is not None and rng.random() < feedback:
                    try:
                        rid = r.json()["request_id"]
                        fr = client.post("/feedback", json={"request_id": rid, "label": labels[i]})
                        fstatus = fr.status_code
                    except (httpx.HTTPError, ValueError, KeyError):
                        fstatus = 0
                    with lock:
                        feedback_status[fstatus] += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    lat = np.asarray(latencies) * 1000.0
    total = sum(statuses.values())
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1) if elapsed else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "transport_errors": dict(errors),
        "feedback_statuses": {str(k): v for k, v in sorted(feedback_status.items())},
        "feedback_non_2xx": sum(v for k, v in feedback_status.items() if not 200 <= k < 300),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if total else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if total else None,
        "by_version": dict(versions),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--rows", required=True, type=Path, help="JSON lines: {\"row\": {...}, \"label\": ...}")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=None, help="requests/s in all (default: as fast as it can)")
    ap.add_argument("--feedback", type=float, default=0.0)
    ap.add_argument("--stop-file", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here too")
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    result = run_load(
        args.url, rows, connections=args.connections, duration_s=args.duration,
        max_requests=args.max_requests, rate=args.rate, feedback=args.feedback, stop_file=args.stop_file,
    )
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
