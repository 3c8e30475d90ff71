"""Production monitoring: the champion's live inputs against its training data,
and its live accuracy from feedback labels."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import httpx

from ratchet.core.config import RatchetConfig
from ratchet.core.performance import window_estimate
from ratchet.core.schema import Schema
from ratchet.data.ingest import reference_profile
from ratchet.data.profile_drift import drift_html, drift_report
from ratchet.data.profiling import deserialize_profile, merge_profiles
from ratchet.data.repository.base import DataRepository
from ratchet.monitoring.batch_scores import champion_baseline
from ratchet.monitoring.concept import Baseline, ConceptCheck, Sample, check, spent_alpha
from ratchet.monitoring.drift_result import DriftResult
from ratchet.serving.profiler import safe_name
from ratchet.training.registry import Registry
from ratchet.training.versions import VersionMarks

MIN_FEEDBACK = 30  # live accuracy is judged only on at least this many labelled predictions
MIN_ESTIMATE_ROWS = 200  # the estimate without labels is judged on windows of at least this many rows
ESTIMATE_Z = 3.0  # a drop of the estimate beyond this many sd of its own (and the held-out figure's) uncertainty


def live_profile(serving_dir: Path, version: str, since: float | None = None):
    """Merged live profile of one model version (window files written at or after ``since``)."""
    folder = Path(serving_dir) / "profiles" / safe_name(str(version))
    paths = sorted(p for p in folder.glob("*.bin") if since is None or p.stat().st_mtime >= since)
    if not paths:
        return None
    return merge_profiles([deserialize_profile(p.read_bytes()) for p in paths])


def live_stats(service_url: str | None, version: str) -> dict[str, Any] | None:
    """Per-version live figures from a running service's ``/stats``; None when unreachable."""
    if not service_url:
        return None
    try:
        stats = httpx.get(f"{service_url}/stats", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return (stats.get("versions") or {}).get(str(version))


def feedback_windows(readings: list[DriftResult], min_feedback: int = MIN_FEEDBACK) -> list[Sample]:
    """Live feedback windows from successive readings of one version's cumulative counters
    (``checked_at``, ``feedback_total``, ``correct_total``; oldest first): each window holds the
    labels that came between readings, joined until it has ``min_feedback``. A counter that went
    down (the service restarted) starts counting again from zero. Labels: ``"<start>..<end>"``
    in unix seconds."""
    windows: list[Sample] = []
    prev_fb = prev_ok = n = wrong = 0
    start: float | None = None
    for r in readings:
        at, fb, ok = r.checked_at, r.feedback_total or 0, r.correct_total or 0
        if fb < prev_fb or ok < prev_ok:
            prev_fb = prev_ok = 0
        n, wrong = n + fb - prev_fb, wrong + (fb - prev_fb) - (ok - prev_ok)
        prev_fb, prev_ok = fb, ok
        start = at if start is None else start
        if n >= min_feedback:
            windows.append(Sample(f"{start:.3f}..{at:.3f}", n, wrong / n))
            start, n, wrong = at, 0, 0
    return windows


def live_concept(readings: list[DriftResult], base: Baseline, cfg) -> ConceptCheck | None:
    """The champion's live accuracy, window after window, against its held-out accuracy (the
    same sequential test as the labelled batches at ingest): the first window where a change is
    detected, with the window where it began; else the verdict on the newest window."""
    windows = feedback_windows(readings)
    verdict = None
    for i, w in enumerate(windows):
        verdict = check(windows[:i], w, base, cfg)
        if verdict.detected:
            break
    return verdict


def window_start(label: str) -> float:
    return float(label.split("..", 1)[0])


def live_error(stats: dict[str, Any], held_out: dict[str, float], index: int, cfg) -> dict[str, Any] | None:
    """Regression: the champion's live MAE (from ``/stats``: ``feedback``, ``abs_error_sum``,
    ``squared_error_sum``) against its held-out MAE (run metrics ``test_mae``, ``test_rmse``,
    ``test_rows``) raised by ``drift.concept_min_drop`` (relative); None without enough labels or
    held-out figures.

    One-sided Welch t-test on the mean absolute error (``scipy.stats.ttest_ind_from_stats``),
    the held-out rows a sample too: the sd of their absolute errors is sqrt(RMSE^2 - MAE^2).
    The monitor re-tests the same champion at every run, so the ``index``-th test is held to
    ``concept.spent_alpha(concept_alpha, index)`` (sums to at most ``concept_alpha`` over the
    champion's life, as the concept tests)."""
    from scipy.stats import ttest_ind_from_stats

    n = int(stats.get("feedback") or 0)
    mae0, rmse0, n0 = (held_out.get(k) for k in ("test_mae", "test_rmse", "test_rows"))
    if n < MIN_FEEDBACK or mae0 is None or rmse0 is None or not n0 or stats.get("abs_error_sum") is None:
        return None
    mae, mse = float(stats["abs_error_sum"]) / n, float(stats.get("squared_error_sum") or 0.0) / n
    sd = math.sqrt(max(mse - mae * mae, 0.0) * n / (n - 1))
    sd0 = math.sqrt(max(rmse0 * rmse0 - mae0 * mae0, 0.0))
    bound = mae0 * (1.0 + cfg.concept_min_drop)
    if sd == 0 and sd0 == 0:
        p = 0.0 if mae > bound else 1.0
    else:
        p = float(ttest_ind_from_stats(mae, sd, n, bound, sd0, int(n0), equal_var=False, alternative="greater").pvalue)
    alpha = spent_alpha(cfg.concept_alpha, index)
    return {
        "live_mae": mae, "live_rmse": math.sqrt(mse), "feedback": n, "held_out_mae": mae0,
        "p_value": p, "alpha": alpha, "index": index, "detected": p < alpha,
    }


def production_drift(
    repo: DataRepository,
    registry: Registry,
    schema: Schema,
    cfg: RatchetConfig,
    serving_dir: Path,
    out_dir: Path,
    since: float | None = None,
    service_url: str | None = None,
) -> DriftResult:
    """Drift of the champion's live inputs (whylogs KS / chi-square per feature) and
    its live accuracy; writes ``drift.json`` and an HTML drift report to ``out_dir``."""
    champion = registry.alias("champion")
    result = DriftResult(checked_at=time.time(), champion=champion, detected=False)
    if champion is None:
        result.reason = "no champion"
    else:
        lineage = registry.lineage(champion)
        ref = reference_profile(repo, lineage.data_commit, lineage.window_batches)
        live = live_profile(serving_dir, champion, since)
        if ref is None or live is None:
            result.reason = "no live traffic profiled yet" if live is None else "no training profile"
        else:
            # a shift in a feature the champion barely uses is listed, never an alarm; datetimes not scored
            report = drift_report(ref, live, cfg.drift, columns=schema.drift_feature_names,
                                  importance=lineage.feature_importance or None)
            for key, value in report.to_dict().items():  # features, drifted_share, detected
                setattr(result, key, value)
            result.drifted_features = report.drifted_features
            result.kind = "data" if report.detected else None
            html = out_dir / "reports" / "drift" / f"{time.strftime('%Y%m%dT%H%M%S')}-v{champion}.html"
            html.parent.mkdir(parents=True, exist_ok=True)
            result.html = str(drift_html(ref, live, html, cfg=cfg.drift, columns=schema.drift_feature_names))
        stats = live_stats(service_url, champion)
        earlier = drift_history(out_dir) if stats else []  # the readings before this one, read once
        if stats:
            result.feedback_total, result.correct_total = stats.get("feedback", 0), stats.get("correct", 0)
        base = champion_baseline(registry, schema)
        if base is not None and not base.regression and stats:
            readings = [h for h in earlier if h.champion == champion and h.feedback_total is not None]
            verdict = live_concept([*readings, result], base, cfg.drift)
            if verdict is not None:
                result.concept = verdict.to_dict()
                if verdict.detected:
                    result.detected, result.kind, result.onset = True, "concept", verdict.onset
                    result.reason = (
                        f"live accuracy {verdict.score:.3f} on window {verdict.label} below the champion's held-out "
                        f"{1 - verdict.baseline_error:.3f} (p={verdict.p_value:.2g} < {verdict.alpha:.2g}); "
                        f"changed from window {verdict.onset}"
                    )
                    registry.mark(champion, VersionMarks(concept_live_onset=window_start(verdict.onset)))
        if base is not None and not base.regression and stats and stats.get("estimated_rows"):
            _estimated_quality(result, base, stats, earlier)
        if stats and stats.get("feedback", 0) >= MIN_FEEDBACK and stats.get("live_accuracy") is not None:
            result.live_accuracy = stats["live_accuracy"]
            result.feedback = stats["feedback"]
            if stats["live_accuracy"] < cfg.gate.floor:
                result.detected = True
                result.reason = f"live accuracy {stats['live_accuracy']:.3f} below the floor {cfg.gate.floor}"
        if stats and stats.get("task") == "regression":
            _regression_quality(result, registry, champion, stats, earlier, cfg)
    (out_dir / "drift.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    history = out_dir / "reports" / "drift" / "history.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a") as f:
        f.write(json.dumps(result.to_dict(), default=str) + "\n")
    return result


def estimated_check(base: Baseline, stats: dict[str, Any], readings: list[DriftResult],
                    min_rows: int = MIN_ESTIMATE_ROWS, z: float = ESTIMATE_Z) -> dict[str, Any] | None:
    """The champion's accuracy estimated without labels (CBPE: the service's calibrated
    confidences, ``ratchet.core.performance``) over the live rows since the newest earlier
    reading that leaves at least ``min_rows`` (``readings``: this champion's, oldest first, each
    with the cumulative ``estimated`` sums), against its held-out accuracy. ``detected`` when the
    estimate is below it by more than ``z`` sd of both figures' sampling error together: the model
    suffers before any label says so. None when the window has too few rows."""
    cur = {k: stats.get(k) for k in ("estimated_rows", "estimated_correct", "estimated_variance")}
    est = None
    for prev in reversed(readings):
        sums = prev.estimated_sums or {}
        if float(sums.get("estimated_rows") or 0) > float(cur["estimated_rows"] or 0):
            break  # the service restarted after that reading
        found = window_estimate(cur, sums)
        if found is not None and found.rows >= min_rows:
            est = found
            break
    if est is None:
        est = window_estimate(cur)
        if est is None or est.rows < min_rows:
            return None
    ref = 1.0 - base.error
    ref_sd = math.sqrt(ref * (1.0 - ref) / base.rows) if base.rows else 0.0
    spread = math.hypot(est.accuracy_sd, ref_sd)
    return {
        "rows": est.rows, "accuracy": est.accuracy, "accuracy_sd": est.accuracy_sd,
        "held_out_accuracy": ref, "held_out_sd": ref_sd, "z": z,
        "detected": ref - est.accuracy > z * spread,
    }


def _estimated_quality(result: DriftResult, base: Baseline, stats: dict[str, Any],
                       history: list[DriftResult]) -> None:
    """``estimated_check`` into ``result`` (kind ``estimated`` when it drops, unless concept drift was found)."""
    result.estimated_sums = {k: stats.get(k) for k in ("estimated_rows", "estimated_correct", "estimated_variance")}
    readings = [h for h in history if h.champion == result.champion and h.estimated_sums is not None]
    found = estimated_check(base, stats, readings)
    if found is None:
        return
    result.estimated = found
    result.estimated_accuracy = found["accuracy"]
    if found["detected"]:
        result.detected = True
        if result.kind != "concept":
            result.kind = "estimated"
            result.reason = (
                f"estimated accuracy {found['accuracy']:.3f} ± {found['accuracy_sd']:.3f} on {found['rows']} unlabelled "
                f"live rows, below the champion's held-out {found['held_out_accuracy']:.3f} by more than "
                f"{found['z']:g} sd (no label needed)"
            )


def _regression_quality(result: DriftResult, registry: Registry, champion: str, stats: dict[str, Any],
                        history: list[DriftResult], cfg: RatchetConfig) -> None:
    """``live_error`` of a regression champion into ``result`` (the index counts this champion's
    earlier tests in the drift history)."""
    metrics = dict(registry.client.get_run(registry.version_info(champion)["run_id"]).data.metrics)
    index = 1 + sum(1 for h in history if h.champion == champion and h.live_error is not None)
    found = live_error(stats, metrics, index, cfg.drift)
    if found is None:
        return
    result.live_error = found
    result.live_mae, result.live_rmse, result.feedback = found["live_mae"], found["live_rmse"], found["feedback"]
    if found["detected"]:
        result.detected = True
        result.kind = result.kind or "concept"
        result.reason = (
            f"live MAE {found['live_mae']:.4g} above the champion's held-out {found['held_out_mae']:.4g} "
            f"(p={found['p_value']:.2g} < {found['alpha']:.2g})"
        )


def _estimated_words(est: dict[str, Any] | None) -> str:
    if not est:
        return "none (too few calibrated rows)"
    return (f"{est['accuracy']:.3f} ± {est['accuracy_sd']:.3f} on {est['rows']} rows "
            f"(held-out {est['held_out_accuracy']:.3f}; dropped: {est['detected']})")


def drift_history(home: Path) -> list[DriftResult]:
    path = Path(home) / "reports" / "drift" / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [DriftResult.model_validate_json(line) for line in lines if line]


def drift_markdown(result: DriftResult) -> str:
    """The monitoring run's finding for people: detected or not, why, and each feature's test."""
    rows = "\n".join(
        f"| {k} | {v.get('algorithm')} | {v.get('p_value')} | {v.get('drifted')} |"
        for k, v in (result.features or {}).items()
    )
    return (
        f"# Production drift of champion v{result.champion}\n\n"
        f"detected: **{result.detected}** {result.reason or ''}\n\n"
        + (f"live MAE: {result.live_mae}\n\n" if result.live_mae is not None
           else f"live accuracy: {result.live_accuracy} (feedback), estimated without labels: "
                f"{_estimated_words(result.estimated)}\n\n")
        + f"| feature | test | p-value | drifted |\n|---|---|---|---|\n{rows}\n"
    )
