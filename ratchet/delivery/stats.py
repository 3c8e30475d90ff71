"""Windows of ``GET /stats``: the service's counters are cumulative per model version (with a
latency histogram), so the canary diffs two reads and the server keeps no per-canary state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COUNTERS = (
    "requests", "errors", "server_errors", "routed", "fallbacks", "shadow_requests", "shadow_errors",
    "model_errors", "rows", "shadow_rows", "feedback", "correct",
)


@dataclass
class VersionWindow:
    """One version's counts between two reads of ``/stats``."""

    routed: int = 0  # requests routed to it, shadow included
    failures: int = 0  # 5xx answers, fallbacks to the champion, shadow failures
    requests: int = 0  # answers it gave (latency samples)
    feedback: int = 0
    correct: int = 0
    predicted: dict[str, int] = field(default_factory=dict)
    latency_hist: list[int] = field(default_factory=list)
    regression: bool = False  # a regression model: feedback gives the error sums below
    abs_error: float = 0.0  # sum of |prediction - label| over the feedback
    squared_error: float = 0.0  # sum of (prediction - label)^2

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.routed if self.routed else None

    @property
    def accuracy(self) -> float | None:
        return None if self.regression or not self.feedback else self.correct / self.feedback

    @property
    def mae(self) -> float | None:
        return self.abs_error / self.feedback if self.regression and self.feedback else None

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self.squared_error / self.feedback) if self.regression and self.feedback else None


def _version_window(later: dict, earlier: dict | None) -> VersionWindow:
    earlier = earlier or {}

    def d(key: str) -> int:
        return max(0, int(later.get(key, 0)) - int(earlier.get(key, 0)))

    def df(key: str) -> float:
        return max(0.0, float(later.get(key) or 0.0) - float(earlier.get(key) or 0.0))

    pred_a, pred_b = later.get("predicted") or {}, earlier.get("predicted") or {}
    hist_a, hist_b = later.get("latency_hist_ms") or [], earlier.get("latency_hist_ms") or []
    return VersionWindow(
        routed=d("routed") + d("shadow_requests"),
        failures=d("server_errors") + d("fallbacks") + d("shadow_errors"),
        requests=d("requests"),
        feedback=d("feedback"),
        correct=d("correct"),
        predicted={k: max(0, v - pred_b.get(k, 0)) for k, v in pred_a.items()},
        latency_hist=[max(0, a - (hist_b[i] if i < len(hist_b) else 0)) for i, a in enumerate(hist_a)],
        regression=later.get("task") == "regression",
        abs_error=df("abs_error_sum"),
        squared_error=df("squared_error_sum"),
    )


def window(later: dict, earlier: dict | None, version: str) -> VersionWindow:
    """``version``'s counts between two ``/stats`` bodies (``earlier`` None: since start)."""
    a = (later.get("versions") or {}).get(version) or {}
    b = ((earlier or {}).get("versions") or {}).get(version) if earlier else None
    return _version_window(a, b)


def restarted(later: dict, earlier: dict) -> bool:
    """Whether a counter went down between the reads (the service restarted)."""
    for v, b in (earlier.get("versions") or {}).items():
        a = (later.get("versions") or {}).get(v)
        if a is None or any(int(a.get(k, 0)) < int(b.get(k, 0)) for k in COUNTERS):
            return True
    return False


def quantile_ms(hist: list[int], bounds_ms: list[float], q: float) -> float | None:
    """The q-quantile of a latency histogram (bucket i counts values <= bounds_ms[i]; the last
    bucket is open), interpolated linearly within its bucket; None without samples."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    cum = 0
    for i, c in enumerate(hist):
        if c and cum + c >= rank:
            if i >= len(bounds_ms):
                return float(bounds_ms[-1])  # in the open bucket: at least the last bound
            lo = bounds_ms[i - 1] if i > 0 else 0.0
            return float(lo + (bounds_ms[i] - lo) * (rank - cum) / c)
        cum += c
    return float(bounds_ms[-1])


def js_distance(a: dict[str, int], b: dict[str, int]) -> float | None:
    """Jensen-Shannon distance (base 2, 0..1) between two predicted-class counts; None when
    either is empty."""
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(a) | set(b))
    ta, tb = sum(a.values()), sum(b.values())
    if not keys or ta == 0 or tb == 0:
        return None
    p = [a.get(k, 0) / ta for k in keys]
    q = [b.get(k, 0) / tb for k in keys]
    d = float(jensenshannon(p, q, base=2))
    return 0.0 if math.isnan(d) else d
