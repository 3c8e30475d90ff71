"""Run the inference service in the background and send it labelled traffic.

Used by the demo and the tests: a real uvicorn server on a free loopback
port, real HTTP requests, delayed feedback labels posted afterwards.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd
import uvicorn

from ratchet.core.files import free_port


class BackgroundServer:
    """uvicorn serving an ASGI app from a thread, started and stopped on demand, with the
    service's settings (``ratchet.serving.transport.service_options``: its HTTP protocol, so a
    serving app's ``/predict`` is answered here as in ``ratchet serve``)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        from ratchet.serving.transport import service_options

        self.app = app
        self.host, self.port = host, port or free_port(host)
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", **service_options())
        )
        self._thread = threading.Thread(target=self._server.run, name="ratchet-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"inference service did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@dataclass
class TrafficStats:
    requests: int = 0
    non_2xx: int = 0
    rows: int = 0
    correct: Counter = field(default_factory=Counter)
    seen: Counter = field(default_factory=Counter)

    def accuracy(self) -> dict[str, float]:
        return {v: self.correct[v] / n for v, n in self.seen.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "rows": self.rows,
            "accuracy_by_version": self.accuracy(),
            "rows_by_version": dict(self.seen),
        }


def send_traffic(
    url: str,
    frame: pd.DataFrame,
    target: str,
    *,
    rows_per_request: int = 1,
    feedback: bool = True,
    entity_column: str | None = None,
    timeout: float = 30.0,
) -> TrafficStats:
    """POST the feature rows of ``frame`` to ``/predict``; then post the true labels as feedback."""
    stats = TrafficStats()
    features = frame.drop(columns=[target])
    labels = frame[target].tolist()
    pending: list[tuple[str, Any]] = []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for start in range(0, len(frame), rows_per_request):
            chunk = features.iloc[start : start + rows_per_request]
            body: dict[str, Any] = {"rows": _records(chunk)}
            if entity_column:
                body["entity_key"] = str(frame[entity_column].iloc[start])
            r = client.post("/predict", json=body)
            stats.requests += 1
            if not r.is_success:
                stats.non_2xx += 1
                continue
            out = r.json()
            version = str(out["model_version"])
            for pred, label in zip(out["predictions"], labels[start : start + rows_per_request], strict=True):
                stats.rows += 1
                stats.seen[version] += 1
                stats.correct[version] += int(str(pred) == str(label))
            if feedback and len(chunk) == 1:
                pending.append((out["request_id"], labels[start]))
        for request_id, label in pending:  # labels arrive after the predictions
            client.post("/feedback", json={"request_id": request_id, "label": label})
    return stats


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict(orient="records")]
