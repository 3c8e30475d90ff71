"""Prometheus metrics (one registry per app) and the JSON behind ``GET /stats``."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NO_VERSION = "none"  # label for requests rejected before a model was chosen
REGRESSION_CLASS = "(number)"  # the predicted_class label of a regression model's rows
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# /stats latency histogram: 0.1 ms .. ~14 s in steps of x1.25 (the canary diffs two reads of it
# to get a window's p99 without the server keeping per-window state)
STATS_LATENCY_BOUNDS_MS = tuple(round(0.1 * 1.25**i, 4) for i in range(54))


@dataclass
class _VersionStats:
    requests: int = 0  # responses it answered
    errors: int = 0  # of those, status >= 400
    server_errors: int = 0  # of those, status >= 500
    routed: int = 0  # requests routed to it (a challenger's fallbacks included)
    fallbacks: int = 0  # routed requests it failed (model error, or input its schema rejects
    #                     but the champion's takes) that the champion then answered
    shadow_requests: int = 0
    shadow_errors: int = 0
    model_errors: int = 0  # predict_proba failures, served or shadow
    rows: int = 0
    shadow_rows: int = 0
    feedback: int = 0
    correct: int = 0
    estimated_rows: int = 0  # rows with a calibrated confidence (ratchet.core.performance) ...
    estimated_correct: float = 0.0  # ... and the sum of it: the expected number of right predictions
    estimated_variance: float = 0.0  # sum of c (1 - c): the estimate's own variance times rows^2
    regression: bool = False  # predicts numbers: feedback gives errors, not right/wrong
    abs_error: float = 0.0  # regression feedback: sum of |prediction - label| ...
    squared_error: float = 0.0  # ... and of (prediction - label)^2 (MAE, RMSE, and the sd of |error|)
    predicted: dict = field(default_factory=dict)  # class label (str) -> rows, served and shadow
    latencies: deque = field(default_factory=lambda: deque(maxlen=4096))
    latency_hist: list = field(default_factory=lambda: [0] * (len(STATS_LATENCY_BOUNDS_MS) + 1))


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
        # the requests answered together at the end of one turn of the event loop, after their
        # shared forwards (ratchet.serving.transport): how much concurrent load the batching finds
        self.turn_requests = Histogram(
            "ratchet_inline_turn_requests",
            "Inline requests answered in one turn of the event loop (one-row requests of a model share a forward)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
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
        self.estimated_accuracy = Gauge(
            "ratchet_estimated_accuracy",
            "Accuracy estimated without labels from calibrated confidences (CBPE), rows since start",
            ["model_version"],
            registry=r,
        )
        self.estimated_correct = Counter(
            "ratchet_estimated_correct",
            "Sum of calibrated confidences: the expected number of right predictions (diff two reads for a window)",
            ["model_version"],
            registry=r,
        )
        self.live_mae = Gauge(
            "ratchet_live_mae", "Regression: mean absolute error of predictions that got feedback",
            ["model_version"], registry=r,
        )
        self.live_rmse = Gauge(
            "ratchet_live_rmse", "Regression: root mean squared error of predictions that got feedback",
            ["model_version"], registry=r,
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
        self._children: dict[tuple, object] = {}
        self._predicted: dict[tuple, tuple] = {}  # (version, alias, label) -> (its counter, str(label))
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
        key = (route, method, status, v)
        children = self._children.get(key)
        if children is None:  # labels() validates and locks: look each label set up once
            children = self._children[key] = (
                self.requests.labels(route, method, str(status), v),
                self.latency.labels(route, v),
            )
        children[0].inc()
        children[1].observe(seconds)
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
            s.server_errors += status >= 500
            s.latencies.append(seconds)
            s.latency_hist[bisect_left(STATS_LATENCY_BOUNDS_MS, seconds * 1000.0)] += 1

    def observe_routed(self, version: str, shadow: bool = False) -> None:
        with self._lock:
            s = self._v(version)
            if shadow:
                s.shadow_requests += 1
            else:
                s.routed += 1

    def observe_fallback(self, version: str, reason: str) -> None:
        self.fallbacks.labels(version, reason).inc()
        with self._lock:
            self._v(version).fallbacks += 1

    def observe_predictions(self, version: str, alias: str, labels: list, shadow: bool = False) -> None:
        if len(labels) == 1:  # a single row: no tally to build
            counts = ((labels[0], 1),)
        else:
            tally: dict = {}
            for lab in labels:
                tally[lab] = tally.get(lab, 0) + 1
            counts = tuple(tally.items())
        children = self._predicted
        named = []  # (the class as /stats names it, rows)
        for lab, n in counts:
            key = (version, alias, lab)
            bound = children.get(key)
            if bound is None:  # the counter's child and the label's name, looked up once per label
                bound = children[key] = (self.predictions.labels(version, alias, str(lab)), str(lab))
            bound[0].inc(n)
            named.append((bound[1], n))
        with self._lock:
            s = self._v(version)
            if shadow:
                s.shadow_rows += len(labels)
            else:
                s.rows += len(labels)
            predicted = s.predicted
            for key, n in named:
                predicted[key] = predicted.get(key, 0) + n

    def observe_values(self, version: str, alias: str, n: int, shadow: bool = False) -> None:
        """A regression model's ``n`` predicted rows (numbers: counted, not tallied per value)."""
        key = (version, alias, REGRESSION_CLASS)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.predictions.labels(version, alias, REGRESSION_CLASS)
        child.inc(n)
        with self._lock:
            s = self._v(version)
            s.regression = True
            if shadow:
                s.shadow_rows += n
            else:
                s.rows += n

    def observe_model_error(self, version: str, alias: str) -> None:
        self.model_errors.labels(version, alias).inc()
        with self._lock:
            s = self._v(version)
            s.model_errors += 1
            if alias == "shadow":  # a served failure is counted as an error response or a fallback
                s.shadow_errors += 1

    def observe_feedback(self, version: str, correct: bool) -> None:
        self.feedback.labels(version, "correct" if correct else "incorrect").inc()
        with self._lock:
            s = self._v(version)
            s.feedback += 1
            s.correct += bool(correct)
            acc = s.correct / s.feedback
        self.live_accuracy.labels(version).set(acc)

    def observe_estimated(self, version: str, calibrated: np.ndarray) -> None:
        """Each predicted row's calibrated confidence: the probability that it is right."""
        total = float(calibrated.sum())
        self.estimated_correct.labels(version).inc(total)
        with self._lock:
            s = self._v(version)
            s.estimated_rows += len(calibrated)
            s.estimated_correct += total
            s.estimated_variance += float((calibrated * (1.0 - calibrated)).sum())
            acc = s.estimated_correct / s.estimated_rows
        self.estimated_accuracy.labels(version).set(acc)

    def observe_feedback_errors(self, version: str, errors: list[float]) -> None:
        """Regression feedback: each row's error (prediction - label)."""
        if not errors:
            return
        self.feedback.labels(version, "number").inc(len(errors))
        with self._lock:
            s = self._v(version)
            s.regression = True
            s.feedback += len(errors)
            s.abs_error += sum(abs(e) for e in errors)
            s.squared_error += sum(e * e for e in errors)
            mae, mse = s.abs_error / s.feedback, s.squared_error / s.feedback
        self.live_mae.labels(version).set(mae)
        self.live_rmse.labels(version).set(mse**0.5)

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
        """Per version: counters since the process started (a reader diffs two reads for a
        window), live accuracy and the accuracy estimated without labels (``estimated_accuracy``,
        its sd and sums ``estimated_rows``/``estimated_correct``/``estimated_variance``; a regression model: ``task``, ``live_mae``, ``live_rmse`` and the
        error sums ``abs_error_sum``, ``squared_error_sum``), p50/p99 over the last 4096 requests, and the latency histogram
        (``latency_hist_ms``: counts per bucket of ``latency_bounds_ms``, the last one open)."""
        counters = (
            "requests", "errors", "server_errors", "routed", "fallbacks", "shadow_requests",
            "shadow_errors", "model_errors", "rows", "shadow_rows", "feedback", "correct",
            "estimated_rows", "estimated_correct", "estimated_variance",
        )
        with self._lock:
            snap = {
                v: ({k: getattr(s, k) for k in counters}, dict(s.predicted), list(s.latency_hist),
                    list(s.latencies), (s.regression, s.abs_error, s.squared_error))
                for v, s in self._versions.items()
            }
            unrouted = self._unrouted_errors
        versions = {}
        for v, (counts, predicted, hist, lat, (regression, abs_error, squared_error)) in snap.items():
            p50 = p99 = None
            if lat:
                p50, p99 = (float(x) * 1000.0 for x in np.percentile(np.asarray(lat), [50, 99]))
            fb = counts["feedback"]
            n_est = counts["estimated_rows"]
            quality: dict = {
                "live_accuracy": (counts["correct"] / fb) if fb else None,
                # CBPE: right beside the realised accuracy; the sums are cumulative (diff two reads)
                "estimated_accuracy": counts["estimated_correct"] / n_est if n_est else None,
                "estimated_accuracy_sd": counts["estimated_variance"] ** 0.5 / n_est if n_est else None,
            }
            if regression:  # errors, not accuracy; the sums are cumulative (a reader diffs two reads)
                quality = {
                    "task": "regression",
                    "live_accuracy": None,
                    "abs_error_sum": abs_error,
                    "squared_error_sum": squared_error,
                    "live_mae": abs_error / fb if fb else None,
                    "live_rmse": (squared_error / fb) ** 0.5 if fb else None,
                }
            versions[v] = {
                **counts,
                **quality,
                "predicted": predicted,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "latency_hist_ms": hist,
            }
        return {
            "versions": versions,
            "unrouted_errors": unrouted,
            "latency_bounds_ms": list(STATS_LATENCY_BOUNDS_MS),
        }
