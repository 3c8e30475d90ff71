"""Prometheus metrics (one registry per app) and the JSON behind ``GET /stats``."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NO_VERSION = "none"  # label for requests rejected before a model was chosen
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _VersionStats:
    requests: int = 0
    errors: int = 0
    rows: int = 0
    shadow_rows: int = 0
    feedback: int = 0
    correct: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=4096))


class ServingMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ratchet_requests",
            "HTTP requests by route, status and model version",
            ["route", "method", "status", "model_version"],
            registry=r,
        )
        self.latency = Histogram(
            "ratchet_request_latency_seconds",
            "HTTP request latency",
            ["route", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "ratchet_request_errors",
            "HTTP responses with status >= 400",
            ["route", "status", "model_version"],
            registry=r,
        )
        self.predictions = Counter(
            "ratchet_predictions",
            "Predicted rows by model version, alias and predicted class",
            ["model_version", "alias", "predicted_class"],
            registry=r,
        )
        self.model_errors = Counter(
            "ratchet_model_errors",
            "predict_proba failures (a failed challenger falls back to the champion)",
            ["model_version", "alias"],
            registry=r,
        )
        self.unseen_categories = Counter(
            "ratchet_unseen_categories",
            "Rows with a category not in the model's schema",
            ["model_version", "column"],
            registry=r,
        )
        self.out_of_range = Counter(
            "ratchet_out_of_range_values",
            "Rows with a numeric value outside the schema's min/max",
            ["model_version", "column"],
            registry=r,
        )
        self.shadow_comparisons = Counter(
            "ratchet_shadow_comparisons",
            "Shadow rows: whether challenger and champion agree",
            ["champion_version", "challenger_version", "outcome"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "ratchet_shadow_dropped",
            "Shadow predictions skipped (queue full or challenger schema mismatch)",
            ["reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "ratchet_challenger_fallbacks",
            "Canary requests served by the champion instead (challenger rejected the input or failed)",
            ["challenger_version", "reason"],
            registry=r,
        )
        self.feedback = Counter(
            "ratchet_feedback",
            "Labelled feedback rows by model version and outcome (correct/incorrect)",
            ["model_version", "outcome"],
            registry=r,
        )
        self.live_accuracy = Gauge(
            "ratchet_live_accuracy",
            "Accuracy of predictions that got feedback",
            ["model_version"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "ratchet_model_loaded",
            "1 for the version loaded under each alias",
            ["alias", "model_version"],
            registry=r,
        )
        self.challenger_share = Gauge(
            "ratchet_challenger_share", "Share of traffic for the challenger", registry=r
        )
        self.shadow_mode = Gauge("ratchet_shadow_mode", "1 when the challenger runs in shadow", registry=r)
        self.ready = Gauge("ratchet_ready", "1 once a champion is loaded", registry=r)
        self.reloads = Counter("ratchet_reloads", "Reloads by result (ok/error)", ["result"], registry=r)
        self.profile_rows = Counter(
            "ratchet_profile_rows", "Rows profiled by model version", ["model_version"], registry=r
        )
        self.profile_dropped = Counter(
            "ratchet_profile_rows_dropped", "Rows not profiled (buffer full or profiling error)", registry=r
        )
        self._lock = threading.Lock()
        self._versions: dict[str, _VersionStats] = {}
        self._unrouted_errors = 0

    # ------------------------------------------------------------- recording
    def _v(self, version: str) -> _VersionStats:
        s = self._versions.get(version)
        if s is None:
            s = self._versions[version] = _VersionStats()
        return s

    def observe_request(
        self, route: str, method: str, status: int, version: str | None, seconds: float
    ) -> None:
        v = version or NO_VERSION
        self.requests.labels(route, method, str(status), v).inc()
        self.latency.labels(route, v).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status), v).inc()
        if route != "/predict":
            return
        with self._lock:
            if version is None:
                self._unrouted_errors += status >= 400
                return
            s = self._v(version)
            s.requests += 1
            s.errors += status >= 400
            s.latencies.append(seconds)

    def observe_predictions(self, version: str, alias: str, labels: list, shadow: bool = False) -> None:
        counts: dict = {}
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
        for lab, n in counts.items():
            self.predictions.labels(version, alias, str(lab)).inc(n)
        with self._lock:
            s = self._v(version)
            if shadow:
                s.shadow_rows += len(labels)
            else:
                s.rows += len(labels)

    def observe_model_error(self, version: str, alias: str) -> None:
        self.model_errors.labels(version, alias).inc()
        if alias == "shadow":  # a served failure is already counted as an error response
            with self._lock:
                self._v(version).errors += 1

    def observe_feedback(self, version: str, correct: bool) -> None:
        self.feedback.labels(version, "correct" if correct else "incorrect").inc()
        with self._lock:
            s = self._v(version)
            s.feedback += 1
            s.correct += bool(correct)
            acc = s.correct / s.feedback
        self.live_accuracy.labels(version).set(acc)

    def set_models(self, champion: str | None, challenger: str | None, share: float, shadow: bool) -> None:
        self.model_loaded.clear()
        if champion is not None:
            self.model_loaded.labels("champion", champion).set(1)
        if challenger is not None:
            self.model_loaded.labels("challenger", challenger).set(1)
        self.challenger_share.set(share)
        self.shadow_mode.set(1 if shadow else 0)
        self.ready.set(1 if champion is not None else 0)

    # ------------------------------------------------------------- reading
    def stats(self) -> dict:
        with self._lock:
            snap = {
                v: (s.requests, s.errors, s.rows, s.shadow_rows, s.feedback, s.correct, list(s.latencies))
                for v, s in self._versions.items()
            }
            unrouted = self._unrouted_errors
        versions = {}
        for v, (req, err, rows, shadow_rows, fb, correct, lat) in snap.items():
            p50 = p99 = None
            if lat:
                p50, p99 = (float(x) * 1000.0 for x in np.percentile(np.asarray(lat), [50, 99]))
            versions[v] = {
                "requests": req,
                "errors": err,
                "rows": rows,
                "shadow_rows": shadow_rows,
                "feedback": fb,
                "live_accuracy": (correct / fb) if fb else None,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
            }
        return {"versions": versions, "unrouted_errors": unrouted}
