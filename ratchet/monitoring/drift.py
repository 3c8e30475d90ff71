"""Production monitoring: the champion's live inputs against its training data,
and its live accuracy from feedback labels."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from ratchet.core.config import RatchetConfig
from ratchet.core.schema import Schema
from ratchet.data.ingest import reference_profile
from ratchet.data.profiling import deserialize_profile, drift_html, drift_report, merge_profiles
from ratchet.data.repository.base import DataRepository
from ratchet.serving.profiler import safe_name
from ratchet.training.registry import Registry

MIN_FEEDBACK = 30  # live accuracy is judged only on at least this many labelled predictions


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


def production_drift(
    repo: DataRepository,
    registry: Registry,
    schema: Schema,
    cfg: RatchetConfig,
    serving_dir: Path,
    out_dir: Path,
    since: float | None = None,
    service_url: str | None = None,
) -> dict[str, Any]:
    """Drift of the champion's live inputs (whylogs KS / chi-square per feature) and
    its live accuracy; writes ``drift.json`` and an HTML drift report to ``out_dir``."""
    champion = registry.alias("champion")
    result: dict[str, Any] = {"checked_at": time.time(), "champion": champion, "detected": False}
    if champion is None:
        result["reason"] = "no champion"
    else:
        tags = registry.version_info(champion)["tags"]
        ref = reference_profile(repo, tags["data_commit"], int(tags.get("window_batches") or 0) or None)
        live = live_profile(serving_dir, champion, since)
        if ref is None or live is None:
            result["reason"] = "no live traffic profiled yet" if live is None else "no training profile"
        else:
            report = drift_report(ref, live, cfg.drift, columns=schema.feature_names)
            result.update(report.to_dict())
            result["drifted_features"] = report.drifted_features
            html = out_dir / "reports" / "drift" / f"{time.strftime('%Y%m%dT%H%M%S')}-v{champion}.html"
            html.parent.mkdir(parents=True, exist_ok=True)
            result["html"] = str(drift_html(ref, live, html, cfg=cfg.drift, columns=schema.feature_names))
        stats = live_stats(service_url, champion)
        if stats and stats.get("feedback", 0) >= MIN_FEEDBACK and stats.get("live_accuracy") is not None:
            result["live_accuracy"] = stats["live_accuracy"]
            result["feedback"] = stats["feedback"]
            if stats["live_accuracy"] < cfg.gate.floor:
                result["detected"] = True
                result["reason"] = f"live accuracy {stats['live_accuracy']:.3f} below the floor {cfg.gate.floor}"
    (out_dir / "drift.json").write_text(json.dumps(result, indent=2, default=str))
    history = out_dir / "reports" / "drift" / "history.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a") as f:
        f.write(json.dumps(result, default=str) + "\n")
    return result


def drift_history(home: Path) -> list[dict[str, Any]]:
    path = Path(home) / "reports" / "drift" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def drift_markdown(result: dict[str, Any]) -> str:
    """The monitoring run's finding for people: detected or not, why, and each feature's test."""
    rows = "\n".join(
        f"| {k} | {v.get('algorithm')} | {v.get('p_value')} | {v.get('drifted')} |"
        for k, v in (result.get("features") or {}).items()
    )
    return (
        f"# Production drift of champion v{result.get('champion')}\n\n"
        f"detected: **{result.get('detected')}** {result.get('reason') or ''}\n\n"
        f"live accuracy: {result.get('live_accuracy')}\n\n"
        f"| feature | test | p-value | drifted |\n|---|---|---|---|\n{rows}\n"
    )
