"""The demo's outside world: data arrives in batches, users send requests, labels come later.

The simulator only commits data (through the ``ingest`` callable it is given)
and sends traffic to the running service; it never calls training, evaluation
or promotion. Whatever improves the model is the stack's automations at work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd

from ratchet.core.config import DemoConfig
from ratchet.core.performance import window_estimate
from ratchet.core.settings import prefect_api_headers
from ratchet.demo.traffic import send_traffic

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@dataclass
class Timeline:
    """What a person would watch: per step, live accuracy per version and the traffic split."""

    t0: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.events.setdefault(name, time.time())

    def record(self, phase: str, batch: int | None, stats: dict[str, Any], health: dict[str, Any] | None) -> None:
        self.rows.append(
            {
                "t": time.time() - self.t0,
                "phase": phase,
                "batch": batch,
                "accuracy_by_version": stats["accuracy_by_version"],
                # the service's estimate without labels over the same slice (CBPE), beside the realised one
                "estimated_by_version": stats.get("estimated_by_version") or {},
                "rows_by_version": stats["rows_by_version"],
                "non_2xx": stats["non_2xx"],
                "champion": (health or {}).get("champion"),
                "challenger": (health or {}).get("challenger"),
                "challenger_share": ((health or {}).get("traffic") or {}).get("challenger_share"),
            }
        )


def _health(service_url: str) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{service_url}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


NO_TRAFFIC = {"accuracy_by_version": {}, "rows_by_version": {}, "non_2xx": 0}


def _send(service_url: str, frame: pd.DataFrame, target: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Send a slice once the service is ready (it has a champion): before the first
    model exists users get no predictions, which is not a failure of the service."""
    health = _health(service_url)
    if not (health and health.get("ready")):
        return NO_TRAFFIC, health
    before = _versions(service_url)
    sent = send_traffic(service_url, frame, target).to_dict()
    after = _versions(service_url)
    sent["estimated_by_version"] = {}
    for v, cur in after.items():
        est = window_estimate(cur, before.get(v))
        if est is not None:
            sent["estimated_by_version"][v] = est.accuracy
    return sent, _health(service_url)


def _versions(service_url: str) -> dict[str, Any]:
    """``/stats``' per-version counters (the estimate's sums among them); empty when unreachable."""
    try:
        return httpx.get(f"{service_url}/stats", timeout=5).json().get("versions") or {}
    except (httpx.HTTPError, ValueError):
        return {}


def pending_runs(prefect_api_url: str, deployment_names: set[str]) -> int:
    """Flow runs of these deployments (by deployment name) that are scheduled, waiting or running."""
    auth = prefect_api_headers()  # a server bound beyond loopback takes basic auth
    deployments = httpx.post(f"{prefect_api_url}/deployments/filter", json={"limit": 200}, timeout=10,
                             headers=auth).json()
    ids = [d["id"] for d in deployments if d["name"] in deployment_names]
    if not ids:
        return 0
    runs = httpx.post(
        f"{prefect_api_url}/flow_runs/filter",
        json={"flow_runs": {"deployment_id": {"any_": ids}}, "limit": 200},
        timeout=10, headers=auth,
    ).json()
    return sum(1 for r in runs if r["state_type"] not in FINAL_STATES)


def simulate(
    cfg: DemoConfig,
    batches: list[str],
    traffic_for: Callable[[int, int], pd.DataFrame],
    target: str,
    drift_at: int,
    service_url: str,
    ingest: Callable[[str], dict[str, Any]],
    is_quiet: Callable[[], bool],
    log: Callable[[str], None] = print,
) -> Timeline:
    """Two phases, clean then drifted. In each, commit a batch every
    ``batch_interval_s`` and send that period's traffic in slices; at the end of
    a phase keep sending its traffic until the automations have been idle for
    ``quiet_s`` (at most ``settle_timeout_s``). Waiting is only time passing in
    compressed form: the simulator never asks anything of the stack."""
    tl = Timeline(time.time())
    slices = max(1, cfg.slices_per_batch)
    phases = [("clean", range(0, drift_at)), ("drift", range(drift_at, len(batches)))]
    for phase, indices in phases:
        for i in indices:
            if i == drift_at:
                tl.mark("drift_onset")
            out = ingest(batches[i])
            log(f"batch {i} ({phase}): {out.get('status')}, main at {str(out.get('commit'))[:12]}")
            for s in range(slices):
                t_slice = time.time()
                tl.record(phase, i, *_send(service_url, traffic_for(i, s), target))
                time.sleep(max(0.0, cfg.batch_interval_s / slices - (time.time() - t_slice)))
        _settle(cfg, tl, phase, indices[-1], traffic_for, target, service_url, is_quiet, log)
    tl.mark("end")
    return tl


def _settle(cfg, tl, phase, last, traffic_for, target, service_url, is_quiet, log) -> None:
    slices = max(1, cfg.slices_per_batch)
    deadline = time.time() + cfg.settle_timeout_s
    quiet_since: float | None = None
    k = slices
    while time.time() < deadline:
        k += 1  # fresh rows every time: resending the same rows would look like drift to a KS test
        tl.record(phase, last, *_send(service_url, traffic_for(last, k), target))
        if is_quiet():
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= cfg.quiet_s:
                log(f"{phase} phase settled: training and release idle for {cfg.quiet_s:.0f} s")
                return
        else:
            quiet_since = None
        time.sleep(max(0.0, cfg.batch_interval_s / slices))
    log(f"the automations were still busy {cfg.settle_timeout_s:.0f} s after the {phase} phase; going on")
