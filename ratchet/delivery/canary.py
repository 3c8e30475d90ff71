"""Progressive delivery: ramp the challenger's traffic share, compare it with the champion on
live traffic at every step, promote at the end or roll back at once on a guardrail breach.

Core library (no Prefect). The service is driven through its admin API only
(``PUT /admin/traffic``, ``POST /admin/reload``, ``GET /stats``), so the canary works against
any running instance, in this process or elsewhere.

Statistics
----------
``GET /stats`` gives cumulative counters per model version (and a latency histogram); the
monitor diffs reads, so the server keeps no per-canary state. At every read (every
``poll_s``) the guardrails are checked; a breach stops the canary at once. Because the
canary looks again and again, the two statistical guardrails are *sequential* tests,
valid at every look (a fixed-sample test checked this often would raise false alarms far
above its nominal rate):

* **errors**: Wald's sequential probability ratio test. An error is a failed request
  (5xx) or, for the challenger, a request it failed that the champion then answered
  (model error, or input its schema rejects and the champion's accepts). Given that
  an error happened in an interval where the challenger served ``n_h`` and the champion
  ``n_c`` requests, under H0 (equal error rates) it is the challenger's with probability
  ``n_h / (n_h + n_c)``; under H1 (the challenger's rate is ``error_rate_ratio`` times the
  champion's) with ``R n_h / (R n_h + n_c)``. The log-likelihood ratio of the binomial
  counts per interval adds up; H0 is rejected (breach) when it crosses
  ``log((1 - beta) / alpha)``. In an interval where the champion served nothing (the
  100 % step) the challenger's errors are tested against the champion's rate measured
  earlier in the canary (one-sample binomial SPRT, rate smoothed by +0.5/+1).
  Neither scipy nor statsmodels ships an SPRT; the test is a running sum of binomial
  log-likelihood ratios (closed form, checked against ``scipy.stats.binom.logpmf``), so it
  is written here.
* **live accuracy** (where ``/feedback`` labels arrive): the mixture SPRT (mSPRT, Johari
  et al., "Always valid inference", 2017) on the difference of accuracies, normal
  approximation, normal mixing distribution with sd ``accuracy_tau``; its always-valid
  p-value is the running minimum of ``1 / Lambda``. A breach is p <= ``accuracy_alpha``
  with the challenger worse than the champion by more than ``accuracy_margin``.
  (No library implements the mSPRT either; it is one closed-form expression.)

And guardrails on magnitudes, not tests. Hard caps are checked at every look:

* **absolute error rate** of the challenger in the step above ``max_error_rate``;
* **p99 latency** of the challenger in the step above ``max_p99_ms`` (when set).

Comparisons of noisy magnitudes are judged once per step, on the whole window (checked at
every poll they would raise false alarms, as a fixed-sample test does):

* **p99 latency** of the challenger in the step above both ``max_p99_ratio`` x and
  ``p99_slack_ms`` + the champion's (over the step, or over the canary so far when the
  champion served too few requests in the step);
* **prediction drift**: Jensen-Shannon distance (``scipy.spatial.distance.jensenshannon``,
  base 2) between the predicted-class distributions of the two versions over the canary
  above ``max_prediction_js``; waived once live labels show the challenger better (the
  accuracy mSPRT's ``p_better`` <= ``accuracy_alpha``): after concept drift the challenger
  is meant to predict differently.

A canary whose process dies leaves ``canary.json`` in the service's state folder;
``abort_interrupted`` (run by ``ratchet down`` and ``ratchet up``) sets the share back to 0
and records the abort.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ratchet.core.config import CanaryConfig
from ratchet.promotion.ledger import Entry, Ledger

log = logging.getLogger(__name__)

COUNTERS = (
    "requests", "errors", "server_errors", "routed", "fallbacks", "shadow_requests", "shadow_errors",
    "model_errors", "rows", "shadow_rows", "feedback", "correct",
)


class CanaryError(RuntimeError):
    """The canary cannot go on (service unreachable, wrong versions loaded, ...)."""


# ---------------------------------------------------------------- the service's admin API
class AdminClient:
    """The inference service's admin API over HTTP, with a bearer token when one is set."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0, transport=None):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def __repr__(self) -> str:  # never the token
        return f"AdminClient({self.url!r})"

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw) -> dict:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise CanaryError(f"{method} {self.url}{path} failed: {type(e).__name__}: {e}") from e
        if r.status_code not in ok:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise CanaryError(f"{method} {self.url}{path}: HTTP {r.status_code}: {detail}")
        return r.json()

    def health(self) -> dict:
        return self._call("GET", "/health")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def set_traffic(self, share: float, shadow: bool = False) -> dict:
        return self._call("PUT", "/admin/traffic", json={"challenger_share": float(share), "shadow": shadow})

    def reload(self, force: bool = False) -> dict:
        """Reload; a 502 (the registry failed, old models keep serving) comes back as a body."""
        return self._call("POST", "/admin/reload", ok=(200, 502), params={"force": str(force).lower()})

    def close(self) -> None:
        self._http.close()


# ---------------------------------------------------------------- windows of /stats
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

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.routed if self.routed else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.feedback if self.feedback else None


def _version_window(later: dict, earlier: dict | None) -> VersionWindow:
    earlier = earlier or {}

    def d(key: str) -> int:
        return max(0, int(later.get(key, 0)) - int(earlier.get(key, 0)))

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


# ---------------------------------------------------------------- sequential tests
class ErrorSPRT:
    """Wald's SPRT: H0 the challenger's error rate equals the champion's, H1 it is ``ratio`` times.

    Hand-written because neither scipy nor statsmodels provides an SPRT (statsmodels has
    fixed-sample proportion tests only); the log-likelihood ratio of binomial counts is the
    closed form in ``binomial_llr``. ``update`` takes the counts of one interval."""

    def __init__(self, ratio: float, alpha: float, beta: float):
        self.ratio = ratio
        self.upper = math.log((1 - beta) / alpha)  # reject H0: the challenger errs more
        self.lower = math.log(beta / (1 - alpha))  # accept H0 (reported, does not end a step)
        self.llr = 0.0
        self.champion_errors = 0
        self.champion_trials = 0

    @staticmethod
    def binomial_llr(k: int, n: int, p1: float, p0: float) -> float:
        """log [Bin(k; n, p1) / Bin(k; n, p0)]: the binomial coefficients cancel, leaving
        k log(p1/p0) + (n-k) log((1-p1)/(1-p0)) (equal to the difference of
        ``scipy.stats.binom.logpmf``, which the tests check, at a fraction of its cost)."""
        return k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0))

    def update(self, challenger_errors: int, challenger_trials: int, champion_errors: int, champion_trials: int):
        self.champion_errors += champion_errors
        self.champion_trials += champion_trials
        if challenger_trials <= 0:
            return self.llr
        r = self.ratio
        if champion_trials > 0:  # both served: which of them made each error?
            m = challenger_errors + champion_errors
            if m == 0:
                return self.llr
            p0 = challenger_trials / (challenger_trials + champion_trials)
            p1 = r * challenger_trials / (r * challenger_trials + champion_trials)
            self.llr += self.binomial_llr(challenger_errors, m, p1, p0)
        else:  # the challenger served everything: against the champion's rate measured earlier
            p0 = (self.champion_errors + 0.5) / (self.champion_trials + 1.0)
            p1 = min(r * p0, 0.999)
            if p1 > p0:
                self.llr += self.binomial_llr(challenger_errors, challenger_trials, p1, p0)
        return self.llr

    @property
    def rejected(self) -> bool:
        return self.llr >= self.upper

    @property
    def accepted(self) -> bool:
        return self.llr <= self.lower


def msprt_lambda(diff: float, var: float, tau: float) -> float:
    """Mixture likelihood ratio for a normal estimate ``diff`` (variance ``var``) of an effect
    whose null value is 0, with a N(0, tau^2) mixing distribution (Johari et al. 2017)."""
    if var <= 0:
        return 1.0
    t2 = tau * tau
    log_l = 0.5 * math.log(var / (var + t2)) + t2 * diff * diff / (2 * var * (var + t2))
    return math.exp(min(log_l, 700.0))


class AccuracyMSPRT:
    """Always-valid comparison of live accuracies (challenger minus champion)."""

    def __init__(self, tau: float, margin: float):
        self.tau, self.margin = tau, margin
        self.p_worse = 1.0  # always-valid p-value of "not worse by more than margin"
        self.p_better = 1.0  # ... of "not better" (evidence for the promotion)
        self.diff: float | None = None

    def update(self, k_h: int, f_h: int, k_c: int, f_c: int) -> None:
        if f_h <= 0 or f_c <= 0:
            return
        a_h, a_c = k_h / f_h, k_c / f_c
        s_h, s_c = (k_h + 0.5) / (f_h + 1.0), (k_c + 0.5) / (f_c + 1.0)  # keeps the variance > 0
        var = s_h * (1 - s_h) / f_h + s_c * (1 - s_c) / f_c
        self.diff = a_h - a_c
        worse = self.diff + self.margin  # < 0: worse by more than the margin
        if worse < 0:
            self.p_worse = min(self.p_worse, 1.0 / msprt_lambda(worse, var, self.tau))
        if self.diff > 0:
            self.p_better = min(self.p_better, 1.0 / msprt_lambda(self.diff, var, self.tau))


def js_distance(a: dict[str, int], b: dict[str, int]) -> float | None:
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(a) | set(b))
    ta, tb = sum(a.values()), sum(b.values())
    if not keys or ta == 0 or tb == 0:
        return None
    p = [a.get(k, 0) / ta for k in keys]
    q = [b.get(k, 0) / tb for k in keys]
    d = float(jensenshannon(p, q, base=2))
    return 0.0 if math.isnan(d) else d


# ---------------------------------------------------------------- the monitor
@dataclass
class Check:
    breaches: list[str]  # sequential tests and hard caps: valid at every look
    evidence: dict[str, Any]
    challenger_requests: int  # in the step so far
    end_of_step: list[str] = field(default_factory=list)  # magnitudes: judged once, on the whole window
    superseded: bool = False  # a newer challenger took the alias: end the canary, blame no one


@dataclass
class StepResult:
    share: float
    decision: str  # pass | breach | insufficient | superseded
    seconds: float
    breaches: list[str]
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CanaryMonitor:
    """State of one canary: the baseline read, the step's read, and the sequential tests."""

    def __init__(self, cfg: CanaryConfig, champion: str, challenger: str, start: dict):
        self.cfg = cfg
        self.champion, self.challenger = str(champion), str(challenger)
        self.start = start  # read when the canary began
        self.last = start  # previous read (sequential test increments)
        self.step_start = start
        self.share = 0.0
        self.errors = ErrorSPRT(cfg.error_rate_ratio, cfg.alpha, cfg.beta)
        self.accuracy = AccuracyMSPRT(cfg.accuracy_tau, cfg.accuracy_margin)
        self.started_at = time.time()

    def begin_step(self, share: float, stats: dict) -> None:
        self.share = share
        self.step_start = stats
        self._advance(stats)

    def _advance(self, stats: dict) -> None:
        """Feed the interval since the last read to the error SPRT."""
        if restarted(stats, self.last):  # counters reset: start the windows over
            log.warning("the service's counters went down (a restart?): windows start over")
            self.start = self.step_start = self.last = stats
            return
        h = window(stats, self.last, self.challenger)
        c = window(stats, self.last, self.champion)
        self.errors.update(h.failures, h.routed, c.failures, c.routed)
        self.last = stats

    def observe(self, stats: dict) -> Check:
        """Check every guardrail on a new read of ``/stats``."""
        cfg = self.cfg
        served = (stats.get("champion"), stats.get("challenger"))
        if served[0] == self.champion and served[1] is not None and served[1] != self.challenger:
            # a newer challenger was registered meanwhile (its own release comes next): not a fault
            return Check(
                [f"superseded: challenger {served[1]} was registered during the canary of {self.challenger}"],
                {"served": list(served), "superseded_by": served[1]}, 0, superseded=True,
            )
        if served != (self.champion, self.challenger):
            return Check(
                [f"the service now serves champion={served[0]} challenger={served[1]}, "
                 f"not {self.champion}/{self.challenger}: someone moved an alias"],
                {"served": list(served)}, 0,
            )
        self._advance(stats)
        bounds = stats.get("latency_bounds_ms") or []
        step_h = window(stats, self.step_start, self.challenger)
        step_c = window(stats, self.step_start, self.champion)
        all_h = window(stats, self.start, self.challenger)
        all_c = window(stats, self.start, self.champion)
        self.accuracy.update(all_h.correct, all_h.feedback, all_c.correct, all_c.feedback)
        breaches: list[str] = []

        # errors: sequential test, then the absolute cap
        if self.errors.rejected:
            breaches.append(
                f"error rate: SPRT rejects 'challenger errs no more than the champion' "
                f"(log LR {self.errors.llr:.2f} >= {self.errors.upper:.2f}; challenger "
                f"{all_h.failures}/{all_h.routed}, champion {all_c.failures}/{all_c.routed})"
            )
        rate = step_h.error_rate
        if rate is not None and step_h.routed >= cfg.min_requests_for_error_rate and rate > cfg.max_error_rate:
            breaches.append(f"error rate {rate:.3f} over the cap {cfg.max_error_rate}")

        # p99 latency: a hard cap at every look; against the champion once, at the end of the
        # step (a p99 of a few hundred samples is noisy: compared at every poll it would raise
        # false alarms, the multiple-looks problem the error and accuracy tests avoid)
        end_of_step: list[str] = []
        p99_h = quantile_ms(step_h.latency_hist, bounds, 0.99)
        ref = step_c if step_c.requests >= cfg.min_latency_samples else all_c
        p99_c = quantile_ms(ref.latency_hist, bounds, 0.99)
        if p99_h is not None and step_h.requests >= cfg.min_latency_samples:
            if cfg.max_p99_ms is not None and p99_h > cfg.max_p99_ms:
                breaches.append(f"p99 latency {p99_h:.1f} ms over the cap {cfg.max_p99_ms} ms")
            elif (
                p99_c is not None
                and ref.requests >= cfg.min_latency_samples
                and p99_h > cfg.max_p99_ratio * p99_c
                and p99_h > p99_c + cfg.p99_slack_ms
            ):
                end_of_step.append(
                    f"p99 latency {p99_h:.1f} ms vs the champion's {p99_c:.1f} ms "
                    f"(over x{cfg.max_p99_ratio} and +{cfg.p99_slack_ms} ms)"
                )

        # live accuracy
        acc = self.accuracy
        labelled = all_h.feedback >= cfg.min_feedback and all_c.feedback >= cfg.min_feedback
        proven_better = labelled and acc.p_better <= cfg.accuracy_alpha

        # predicted-class distribution (a magnitude too: judged at the end of the step). It stands
        # in for labels; once live labels show the challenger better, its different predictions
        # are the improvement (after concept drift the old champion's are the wrong ones)
        js = None
        if sum(all_h.predicted.values()) >= cfg.min_prediction_rows and (
            sum(all_c.predicted.values()) >= cfg.min_prediction_rows
        ):
            js = js_distance(all_h.predicted, all_c.predicted)
            if js is not None and js > cfg.max_prediction_js and not proven_better:
                end_of_step.append(
                    f"prediction drift: Jensen-Shannon distance {js:.3f} over {cfg.max_prediction_js}"
                )

        if labelled and acc.p_worse <= cfg.accuracy_alpha:
            breaches.append(
                f"live accuracy: challenger {all_h.accuracy:.3f} vs champion {all_c.accuracy:.3f} "
                f"(always-valid p {acc.p_worse:.4f} <= {cfg.accuracy_alpha})"
            )

        evidence = {
            "share": self.share,
            "champion": self.champion,
            "challenger": self.challenger,
            "step": {
                "challenger_requests": step_h.routed,
                "champion_requests": step_c.routed,
                "challenger_errors": step_h.failures,
                "champion_errors": step_c.failures,
                "challenger_error_rate": step_h.error_rate,
                "champion_error_rate": step_c.error_rate,
                "challenger_p99_ms": p99_h,
                "champion_p99_ms": p99_c,
            },
            "canary": {
                "challenger_requests": all_h.routed,
                "champion_requests": all_c.routed,
                "challenger_errors": all_h.failures,
                "champion_errors": all_c.failures,
                "error_sprt_llr": round(self.errors.llr, 4),
                "error_sprt_bounds": [round(self.errors.lower, 4), round(self.errors.upper, 4)],
                "prediction_js": js,
                "prediction_js_waived": bool(js is not None and js > cfg.max_prediction_js and proven_better),
                "challenger_predicted": all_h.predicted,
                "champion_predicted": all_c.predicted,
                "challenger_feedback": all_h.feedback,
                "champion_feedback": all_c.feedback,
                "challenger_accuracy": all_h.accuracy,
                "champion_accuracy": all_c.accuracy,
                "accuracy_diff": acc.diff,
                "accuracy_p_worse": acc.p_worse,
                "accuracy_p_better": acc.p_better,
            },
        }
        return Check(breaches, evidence, step_h.routed, end_of_step)


def watch_step(
    admin: AdminClient,
    monitor: CanaryMonitor,
    share: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Hold ``share`` (already set) for one analysis window, checking guardrails at every poll.

    Ends with ``breach`` at the first breach of a sequential test or a hard cap, or when the
    window is complete (``window_s`` passed and the challenger served ``min_requests``) and a
    magnitude guardrail (p99 against the champion, prediction drift) fails on the whole
    window; ``pass`` when it is complete and nothing failed; ``insufficient`` at
    ``max_window_s`` still short of ``min_requests``."""
    cfg = monitor.cfg
    t0 = clock()
    monitor.begin_step(share, admin.stats())
    check = Check([], {}, 0)
    while True:
        elapsed = clock() - t0
        sleep(max(0.0, min(cfg.poll_s, cfg.max_window_s - elapsed)))
        check = monitor.observe(admin.stats())
        elapsed = clock() - t0
        if check.superseded:
            return StepResult(share, "superseded", elapsed, check.breaches, check.evidence)
        if check.breaches:
            return StepResult(share, "breach", elapsed, check.breaches, check.evidence)
        if elapsed >= cfg.window_s and check.challenger_requests >= cfg.min_requests:
            if check.end_of_step:
                return StepResult(share, "breach", elapsed, check.end_of_step, check.evidence)
            return StepResult(share, "pass", elapsed, [], check.evidence)
        if elapsed >= cfg.max_window_s:
            reason = (
                f"not enough traffic: the challenger served {check.challenger_requests} requests in "
                f"{elapsed:.0f} s, fewer than min_requests={cfg.min_requests}"
            )
            return StepResult(share, "insufficient", elapsed, [reason], check.evidence)


# ---------------------------------------------------------------- start, record, end
def begin(admin: AdminClient, cfg: CanaryConfig, champion: str | None, challenger: str | None) -> CanaryMonitor:
    """Make the service load the registry's aliases; check it serves ``champion`` and
    ``challenger`` with no challenger traffic yet; take the baseline read."""
    if challenger is None:
        raise CanaryError("no challenger: register one (alias 'challenger') before a canary")
    if champion is None:
        raise CanaryError("no champion: promote a first model before a canary")
    body = admin.reload()
    served = (body.get("champion"), body.get("challenger"))
    if served != (str(champion), str(challenger)):
        raise CanaryError(
            f"the service serves champion={served[0]} challenger={served[1]} after a reload, "
            f"not {champion}/{challenger}: {body.get('errors') or 'is it on the same registry?'}"
        )
    admin.set_traffic(0.0)
    return CanaryMonitor(cfg, str(champion), str(challenger), admin.stats())


def record_step(ledger: Ledger, model: str, monitor: CanaryMonitor, result: StepResult, trigger: str,
                data_commit: str | None = None) -> Entry:
    return ledger.append(
        Entry(
            action="traffic", trigger=trigger, model=model, from_version=monitor.champion,
            to_version=monitor.challenger, data_commit=data_commit, traffic=result.share,
            evidence={"decision": result.decision, "seconds": round(result.seconds, 3),
                      "breaches": result.breaches, **result.evidence},
        )
    )


def roll_back(
    admin: AdminClient, registry, ledger: Ledger, monitor: CanaryMonitor, reason: list[str],
    evidence: dict[str, Any], trigger: str, keep_challenger: bool = False, data_commit: str | None = None,
    action: str = "rollback",
) -> dict[str, Any]:
    """Challenger share to 0 first (tried three times), then the registry and the ledger.
    ``action="superseded"``: a newer challenger holds the alias; this one is only tagged."""
    errors = []
    for attempt in range(3):
        try:
            admin.set_traffic(0.0)
            break
        except CanaryError as e:
            errors.append(str(e))
            time.sleep(0.5 * (attempt + 1))
    removed = False
    if not keep_challenger and registry.alias("challenger") == monitor.challenger:
        registry.delete_alias("challenger")
        removed = True
    try:
        registry.client.set_model_version_tag(
            registry.model_name, monitor.challenger, "canary", "rolled_back" if action == "rollback" else action
        )
    except Exception as e:  # a tag is a courtesy; the ledger is the record
        log.warning("could not tag version %s: %s", monitor.challenger, e)
    entry = ledger.append(
        Entry(
            action=action, trigger=trigger, model=registry.model_name, from_version=monitor.challenger,
            to_version=monitor.champion, data_commit=data_commit, traffic=0.0,
            evidence={"reason": reason, "challenger_alias_removed": removed,
                      "traffic_errors": errors, **evidence},
        )
    )
    if len(errors) == 3:
        raise CanaryError(f"rolled back in the registry, but the service did not take share 0: {errors[-1]}")
    try:
        admin.reload()
    except CanaryError as e:  # its watcher picks the alias change up anyway
        log.warning("reload after rollback: %s", e)
    return {"action": action, "champion": monitor.champion, "challenger": monitor.challenger,
            "reason": reason, "ledger_id": entry.id}


def finish(admin: AdminClient, registry, ledger: Ledger, monitor: CanaryMonitor, steps: list[StepResult],
           trigger: str, data_commit: str | None = None, gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Promote the challenger (aliases move, the ledger records it with the offline ``gate``'s
    evidence when a release ran one), have the service load the new aliases, then put the share
    back to 0 for the next challenger."""
    from ratchet.promotion.promote import promote

    evidence = {**(gate or {}), "canary": [s.to_dict() for s in steps]}
    moved = promote(registry, ledger, monitor.challenger, trigger=trigger, evidence=evidence,
                    data_commit=data_commit)
    body = admin.reload()
    if body.get("champion") != monitor.challenger:
        log.warning("service serves champion %s after the reload; its watcher will catch up",
                    body.get("champion"))
    admin.set_traffic(0.0)
    return {**moved, "challenger": monitor.challenger}


# ---------------------------------------------------------------- an interrupted canary
MARKER = "canary.json"


def mark_running(state_dir: Path, monitor: CanaryMonitor, trigger: str) -> Path:
    """``state_dir/canary.json`` while a canary runs: if its process dies (``ratchet down``, a
    killed worker) the file is left behind, and ``abort_interrupted`` finds it."""
    path = Path(state_dir) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"champion": monitor.champion, "challenger": monitor.challenger,
                               "trigger": trigger, "started_at": monitor.started_at}))
    tmp.replace(path)
    return path


def clear_running(state_dir: Path) -> None:
    (Path(state_dir) / MARKER).unlink(missing_ok=True)


def abort_interrupted(state_dir: Path, ledger: Ledger, model: str, reason: str) -> Entry | None:
    """A canary that did not end (its marker is still there): put the challenger's share back to 0
    in the traffic file, so no restarted service routes to an unwatched challenger, and record an
    ``abort`` in the ledger. The aliases are not touched: the champion stays the champion (a
    promotion that had started is all-or-nothing), and the challenger keeps its alias, so
    ``ratchet canary`` can run it again. Call it with the service stopped."""
    from ratchet.serving.routing import TRAFFIC_FILE, Traffic, read_traffic, write_traffic

    path = Path(state_dir) / MARKER
    if not path.exists():
        return None
    try:
        marker = json.loads(path.read_text())
    except ValueError:
        marker = {}
    traffic_file = Path(state_dir) / TRAFFIC_FILE
    try:
        share = read_traffic(traffic_file).challenger_share
    except ValueError:  # a damaged traffic file: all champion is the safe state
        share = None
    write_traffic(traffic_file, Traffic())
    entry = ledger.append(
        Entry(action="abort", trigger=reason, model=model, from_version=marker.get("challenger"),
              to_version=marker.get("champion"), traffic=0.0,
              evidence={"reason": f"the canary did not finish: {reason}", "share_at_abort": share,
                        "canary_trigger": marker.get("trigger"), "started_at": marker.get("started_at")})
    )
    path.unlink(missing_ok=True)
    return entry


# ---------------------------------------------------------------- report
def step_rows(steps: list[StepResult]) -> list[dict[str, Any]]:
    """One row per step for a table artifact."""
    rows = []
    for s in steps:
        st, cn = s.evidence.get("step", {}), s.evidence.get("canary", {})

        def r(x, nd=4):
            return None if x is None else round(x, nd)

        rows.append({
            "share": s.share, "decision": s.decision, "seconds": round(s.seconds, 1),
            "challenger_requests": st.get("challenger_requests"), "champion_requests": st.get("champion_requests"),
            "challenger_error_rate": r(st.get("challenger_error_rate")),
            "champion_error_rate": r(st.get("champion_error_rate")),
            "error_sprt_llr": cn.get("error_sprt_llr"),
            "challenger_p99_ms": r(st.get("challenger_p99_ms"), 2), "champion_p99_ms": r(st.get("champion_p99_ms"), 2),
            "prediction_js": r(cn.get("prediction_js")),
            "challenger_accuracy": r(cn.get("challenger_accuracy")), "champion_accuracy": r(cn.get("champion_accuracy")),
            "accuracy_p_worse": r(cn.get("accuracy_p_worse")),
            "breaches": "; ".join(s.breaches),
        })
    return rows


def plot_ramp(steps: list[StepResult], path: Path, title: str) -> Path:
    """Share per step with the challenger's and champion's p99 and error rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = step_rows(steps)
    x = list(range(1, len(rows) + 1))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    colors = ["tab:green" if r["decision"] == "pass" else "tab:red" for r in rows]
    a1.bar(x, [r["share"] * 100 for r in rows], color=colors)
    a1.set_xlabel("step")
    a1.set_ylabel("challenger share (%)")
    a1.set_ylim(0, 105)
    a1.set_title(title)
    for key, label in (("challenger_p99_ms", "challenger p99"), ("champion_p99_ms", "champion p99")):
        a2.plot(x, [r[key] if r[key] is not None else float("nan") for r in rows], marker="o", label=label)
    a2.set_xlabel("step")
    a2.set_ylabel("p99 latency (ms)")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
