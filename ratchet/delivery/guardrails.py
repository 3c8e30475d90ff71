"""The guardrails of one canary, checked on every read of ``/stats``.

At every read (every ``poll_s``) the guardrails are checked; a breach stops the canary at
once. The statistical ones are sequential tests (``sequential``), valid at every look:

* **errors**: Wald's SPRT of the challenger's error rate against the champion's;
* **live accuracy** (where ``/feedback`` labels arrive): the mSPRT on the difference of
  accuracies; a breach is p <= ``accuracy_alpha`` with the challenger worse than the
  champion by more than ``accuracy_margin``. For a regression model (``/stats`` says
  ``task: regression``), **live error** instead: the mSPRT on log(challenger's MAE /
  champion's MAE) (``MAEMSPRT``); a breach is p <= ``accuracy_alpha`` with the challenger's
  MAE above the champion's by more than ``mae_margin`` (relative).

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
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ratchet.core.config import CanaryConfig
from ratchet.delivery.sequential import MAEMSPRT, AccuracyMSPRT, ErrorSPRT
from ratchet.delivery.stats import VersionWindow, js_distance, quantile_ms, restarted, window

log = logging.getLogger(__name__)


@dataclass
class Check:
    breaches: list[str]  # sequential tests and hard caps: valid at every look
    evidence: dict[str, Any]
    challenger_requests: int  # in the step so far
    end_of_step: list[str] = field(default_factory=list)  # magnitudes: judged once, on the whole window
    superseded: bool = False  # a newer challenger took the alias: end the canary, blame no one


@dataclass(frozen=True)
class Windows:
    """The challenger's (``h``) and the champion's (``c``) counts over the step so far and over
    the canary so far."""

    step_h: VersionWindow
    step_c: VersionWindow
    all_h: VersionWindow
    all_c: VersionWindow


@dataclass(frozen=True)
class Latency:
    """The step's p99s: the challenger's, and the champion's over the step (over the canary
    when it served too few requests in the step), with whether each has enough samples."""

    challenger_ms: float | None
    champion_ms: float | None
    challenger_enough: bool
    champion_enough: bool


class CanaryMonitor:
    """State of one canary: the baseline read, the step's read, and the sequential tests."""

    def __init__(self, cfg: CanaryConfig, champion: str, challenger: str, start: dict,
                 data_commit: str | None = None):
        self.cfg = cfg
        self.champion, self.challenger = str(champion), str(challenger)
        self.data_commit = data_commit  # the challenger's, resolved once: every ledger entry of the canary names it
        self.start = start  # read when the canary began
        self.last = start  # previous read (sequential test increments)
        self.step_start = start
        self.share = 0.0
        self.errors = ErrorSPRT(cfg.error_rate_ratio, cfg.alpha, cfg.beta)
        self.accuracy = AccuracyMSPRT(cfg.accuracy_tau, cfg.accuracy_margin)
        self.mae = MAEMSPRT(cfg.mae_tau, cfg.mae_margin)  # regression models: live errors
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
        wrong = self._check_served(stats)
        if wrong is not None:
            return wrong
        self._advance(stats)
        w = self._windows(stats)
        regression = w.all_h.regression or w.all_c.regression
        if regression:
            self.mae.update(w.all_h.feedback, w.all_h.abs_error, w.all_h.squared_error,
                            w.all_c.feedback, w.all_c.abs_error, w.all_c.squared_error)
        else:
            self.accuracy.update(w.all_h.correct, w.all_h.feedback, w.all_c.correct, w.all_c.feedback)
        latency = self._latency(w, stats.get("latency_bounds_ms") or [])
        latency_cap, latency_vs_champion = self._latency_findings(latency)
        labelled = self._labelled(w)
        p_better = self.mae.p_better if regression else self.accuracy.p_better
        proven_better = labelled and p_better <= self.cfg.accuracy_alpha
        js = self._prediction_js(w)
        drifted = js is not None and js > self.cfg.max_prediction_js
        breaches = [*self._error_findings(w), *latency_cap, *self._accuracy_findings(w, labelled)]
        end_of_step = [*latency_vs_champion, *self._drift_findings(js, drifted and not proven_better)]
        evidence = self._evidence(w, latency, js, js_waived=drifted and proven_better)
        return Check(breaches, evidence, w.step_h.routed, end_of_step)

    # ------------------------------------------------------------ the steps of ``observe``
    def _check_served(self, stats: dict) -> Check | None:
        """A check that ends the step when the service no longer serves this canary's pair."""
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
        return None

    def _windows(self, stats: dict) -> Windows:
        return Windows(
            step_h=window(stats, self.step_start, self.challenger),
            step_c=window(stats, self.step_start, self.champion),
            all_h=window(stats, self.start, self.challenger),
            all_c=window(stats, self.start, self.champion),
        )

    def _error_findings(self, w: Windows) -> list[str]:
        """Errors: the sequential test, then the absolute cap (both at every look)."""
        cfg, found = self.cfg, []
        if self.errors.rejected:
            found.append(
                f"error rate: SPRT rejects 'challenger errs no more than the champion' "
                f"(log LR {self.errors.llr:.2f} >= {self.errors.upper:.2f}; challenger "
                f"{w.all_h.failures}/{w.all_h.routed}, champion {w.all_c.failures}/{w.all_c.routed})"
            )
        rate = w.step_h.error_rate
        if rate is not None and w.step_h.routed >= cfg.min_requests_for_error_rate and rate > cfg.max_error_rate:
            found.append(f"error rate {rate:.3f} over the cap {cfg.max_error_rate}")
        return found

    def _latency(self, w: Windows, bounds: list[float]) -> Latency:
        enough = self.cfg.min_latency_samples
        ref = w.step_c if w.step_c.requests >= enough else w.all_c
        return Latency(
            challenger_ms=quantile_ms(w.step_h.latency_hist, bounds, 0.99),
            champion_ms=quantile_ms(ref.latency_hist, bounds, 0.99),
            challenger_enough=w.step_h.requests >= enough,
            champion_enough=ref.requests >= enough,
        )

    def _latency_findings(self, latency: Latency) -> tuple[list[str], list[str]]:
        """p99 latency: a hard cap at every look (a breach); against the champion once, at the
        end of the step (a p99 of a few hundred samples is noisy: compared at every poll it
        would raise false alarms, the multiple-looks problem the error and accuracy tests
        avoid). Returns (breaches, end-of-step findings)."""
        cfg = self.cfg
        p99_h, p99_c = latency.challenger_ms, latency.champion_ms
        if p99_h is None or not latency.challenger_enough:
            return [], []
        if cfg.max_p99_ms is not None and p99_h > cfg.max_p99_ms:
            return [f"p99 latency {p99_h:.1f} ms over the cap {cfg.max_p99_ms} ms"], []
        if (
            p99_c is not None
            and latency.champion_enough
            and p99_h > cfg.max_p99_ratio * p99_c
            and p99_h > p99_c + cfg.p99_slack_ms
        ):
            return [], [
                f"p99 latency {p99_h:.1f} ms vs the champion's {p99_c:.1f} ms "
                f"(over x{cfg.max_p99_ratio} and +{cfg.p99_slack_ms} ms)"
            ]
        return [], []

    def _labelled(self, w: Windows) -> bool:
        """Whether both versions have enough live labels for the accuracy test to speak."""
        return w.all_h.feedback >= self.cfg.min_feedback and w.all_c.feedback >= self.cfg.min_feedback

    def _prediction_js(self, w: Windows) -> float | None:
        """The predicted-class distance over the canary, once both made enough predictions.

        A magnitude too (judged at the end of the step), standing in for labels; once live
        labels show the challenger better its different predictions are the improvement
        (after concept drift the old champion's are the wrong ones), so the caller waives it."""
        rows = self.cfg.min_prediction_rows
        if sum(w.all_h.predicted.values()) >= rows and sum(w.all_c.predicted.values()) >= rows:
            return js_distance(w.all_h.predicted, w.all_c.predicted)
        return None

    def _drift_findings(self, js: float | None, breached: bool) -> list[str]:
        if not breached:
            return []
        return [f"prediction drift: Jensen-Shannon distance {js:.3f} over {self.cfg.max_prediction_js}"]

    def _accuracy_findings(self, w: Windows, labelled: bool) -> list[str]:
        if w.all_h.regression or w.all_c.regression:
            return self._mae_findings(w, labelled)
        acc, cfg = self.accuracy, self.cfg
        if not (labelled and acc.p_worse <= cfg.accuracy_alpha):
            return []
        return [
            f"live accuracy: challenger {w.all_h.accuracy:.3f} vs champion {w.all_c.accuracy:.3f} "
            f"(always-valid p {acc.p_worse:.4f} <= {cfg.accuracy_alpha})"
        ]

    def _mae_findings(self, w: Windows, labelled: bool) -> list[str]:
        """Regression: the challenger's live MAE above the champion's (the MAE mSPRT)."""
        mae, cfg = self.mae, self.cfg
        if not (labelled and mae.p_worse <= cfg.accuracy_alpha):
            return []
        return [
            f"live error: challenger MAE {w.all_h.mae:.4g} vs champion {w.all_c.mae:.4g} "
            f"(x{mae.ratio:.3f}, margin {cfg.mae_margin:.0%}; always-valid p {mae.p_worse:.4f} <= {cfg.accuracy_alpha})"
        ]

    def _mae_evidence(self, w: Windows) -> dict[str, Any]:
        if not (w.all_h.regression or w.all_c.regression):
            return {}
        return {
            "challenger_mae": w.all_h.mae, "champion_mae": w.all_c.mae,
            "challenger_rmse": w.all_h.rmse, "champion_rmse": w.all_c.rmse,
            "mae_ratio": self.mae.ratio, "mae_p_worse": self.mae.p_worse, "mae_p_better": self.mae.p_better,
        }

    def _evidence(self, w: Windows, latency: Latency, js: float | None, js_waived: bool) -> dict[str, Any]:
        acc = self.accuracy
        return {
            "share": self.share,
            "champion": self.champion,
            "challenger": self.challenger,
            "step": {
                **_counts(w.step_h, w.step_c),
                "challenger_error_rate": w.step_h.error_rate,
                "champion_error_rate": w.step_c.error_rate,
                "challenger_p99_ms": latency.challenger_ms,
                "champion_p99_ms": latency.champion_ms,
            },
            "canary": {
                **_counts(w.all_h, w.all_c),
                "error_sprt_llr": round(self.errors.llr, 4),
                "error_sprt_bounds": [round(self.errors.lower, 4), round(self.errors.upper, 4)],
                "prediction_js": js,
                "prediction_js_waived": bool(js_waived),
                "challenger_predicted": w.all_h.predicted,
                "champion_predicted": w.all_c.predicted,
                "challenger_feedback": w.all_h.feedback,
                "champion_feedback": w.all_c.feedback,
                "challenger_accuracy": w.all_h.accuracy,
                "champion_accuracy": w.all_c.accuracy,
                "accuracy_diff": acc.diff,
                "accuracy_p_worse": acc.p_worse,
                "accuracy_p_better": acc.p_better,
                **self._mae_evidence(w),
            },
        }


def _counts(h: VersionWindow, c: VersionWindow) -> dict[str, int]:
    return {
        "challenger_requests": h.routed,
        "champion_requests": c.routed,
        "challenger_errors": h.failures,
        "champion_errors": c.failures,
    }
