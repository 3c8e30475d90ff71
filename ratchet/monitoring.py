"""Production drift: live profiles of the champion against its training data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ratchet.config import RatchetConfig, Schema
from ratchet.data.base import DataRepository
from ratchet.ingest import reference_profile
from ratchet.profiling import deserialize_profile, drift_report, merge_profiles
from ratchet.registry import Registry
from ratchet.serving.profiler import safe_name


def live_profile(serving_dir: Path, version: str, since: float | None = None):
    """Merged live profile of one model version (windows that started at or after ``since``)."""
    folder = Path(serving_dir) / "profiles" / safe_name(str(version))
    paths = sorted(p for p in folder.glob("*.bin") if since is None or p.stat().st_mtime >= since)
    if not paths:
        return None
    return merge_profiles([deserialize_profile(p.read_bytes()) for p in paths])


def production_drift(
    repo: DataRepository,
    registry: Registry,
    schema: Schema,
    cfg: RatchetConfig,
    serving_dir: Path,
    out_path: Path,
    since: float | None = None,
) -> dict[str, Any]:
    """Compare the champion's live inputs with its training window; write ``out_path``."""
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
    Path(out_path).write_text(json.dumps(result, indent=2, default=str))
    return result
