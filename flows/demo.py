"""The main job: the whole improvement loop on synthetic data, end to end."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow

from flows.ingest import ingest_flow
from flows.promote import promote_flow
from flows.train import train_flow
from ratchet.runtime.options import RunOptions
from tasks.demo import generate_demo_data, write_demo_report
from tasks.monitoring import measure_production_drift
from tasks.serving import send_requests, start_service, stop_service
from tasks.setup import init_home


@flow(name="demo", log_prints=True)
def demo_flow(options: RunOptions = RunOptions()) -> dict[str, Any]:
    started = time.time()
    ctx = options.context()
    common = {"options": options.at_home(str(ctx.settings.root))}
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = str(ctx.settings.reports_dir / run)
    demo = ctx.cfg.demo

    # 1. a user brings data: infer the schema from a sample, then ingest clean batches
    data = generate_demo_data(ctx, run_dir)
    init_home(ctx, data.clean[0], data.target, force=True)
    for path in data.clean:
        ingest_flow(path, **common)

    # 2. first model: search, register, promote over the absolute floor
    train_flow(window_batches=demo.clean_batches, trigger="demo: first model", **common)
    promote_flow(trigger="demo: first model", **common)

    # 3. serve it; traffic before drift; drifted batches land; traffic after drift
    server = start_service(ctx)
    before = send_requests(ctx, server, data.traffic_before)
    for path in data.drifted:
        ingest_flow(path, **common)
    drift_started = time.time()
    after = send_requests(ctx, server, data.traffic_after)
    drift = measure_production_drift(ctx, since=drift_started)

    # 4. retrain on the recent window; the gate decides; the service picks up the new champion
    train_flow(window_batches=demo.drift_batches, trigger="demo: drift", **common)
    promote_flow(trigger="demo: drift", **common)
    recovered = send_requests(ctx, server, data.traffic_after)
    stop_service(server)

    traffic = {
        "requests": before["requests"] + after["requests"] + recovered["requests"],
        "non_2xx": before["non_2xx"] + after["non_2xx"] + recovered["non_2xx"],
        "phases": {"before_drift": before, "after_drift": after, "after_retrain": recovered},
    }
    return write_demo_report(ctx, run, run_dir, data, traffic, drift, started)
