"""The demo's data: a synthetic stream with concept and data drift from one batch on."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ratchet.core.config import DemoConfig
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch

HOLDOUT_SEED_OFFSET = 1_000  # held-out rows come from another seed than ingested ones
TRAFFIC_SEED_OFFSET = 2_000


@dataclass
class DemoData:
    target: str
    drift_at: int
    clean: list[str]
    drifted: list[str]
    holdout: dict[int, pd.DataFrame]
    traffic_before: pd.DataFrame
    traffic_after: pd.DataFrame
    post_drift_train: pd.DataFrame  # every drifted batch: the yardstick model trains on it alone


def _batch(cfg: DemoConfig, index: int, rows: int, seed_offset: int = 0) -> pd.DataFrame:
    drift_at = cfg.clean_batches
    return generate_batch(
        index, rows, cfg.seed + seed_offset, data_drift_at=drift_at, concept_drift_at=drift_at
    )


def make_demo_data(cfg: DemoConfig, folder: Path) -> DemoData:
    folder.mkdir(parents=True, exist_ok=True)
    total = cfg.clean_batches + cfg.drift_batches
    paths = [
        str(write_batch(_batch(cfg, i, cfg.rows_per_batch), folder / f"batch-{i:03d}.csv")) for i in range(total)
    ]
    half = max(1, cfg.requests // 2)
    return DemoData(
        target=DEMO_TARGET,
        drift_at=cfg.clean_batches,
        clean=paths[: cfg.clean_batches],
        drifted=paths[cfg.clean_batches :],
        holdout={i: _batch(cfg, i, 1000, HOLDOUT_SEED_OFFSET) for i in range(total)},
        traffic_before=_batch(cfg, 0, half, TRAFFIC_SEED_OFFSET),
        traffic_after=_batch(cfg, cfg.clean_batches, half, TRAFFIC_SEED_OFFSET),
        post_drift_train=pd.concat([pd.read_csv(p) for p in paths[cfg.clean_batches :]], ignore_index=True),
    )


def demo_traffic(cfg: DemoConfig, batch_index: int, k: int) -> pd.DataFrame:
    """The k-th slice of requests while ``batch_index`` is the newest batch: fresh rows
    from that batch's distribution (labels kept for the delayed feedback)."""
    rows = max(1, cfg.requests_per_batch // max(1, cfg.slices_per_batch))
    return _batch(cfg, batch_index, rows, TRAFFIC_SEED_OFFSET + 7919 * (k + 1))


def reset_sandbox(home: Path) -> None:
    """The demo's home is its own sandbox: clear its stores, keep earlier reports."""
    if not home.exists():
        return
    for child in home.iterdir():
        if child.name == "reports":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _mean_accuracy(predictor, frames: list[pd.DataFrame], schema) -> float:
    from ratchet.demo.report import accuracy

    return sum(accuracy(predictor, f, schema) for f in frames) / len(frames)


def loop_report(ctx, data: DemoData, timeline, run: str) -> dict:
    """What the event-driven demo shows: when drift began, when it was seen, when a
    better champion took all traffic, and how close it came to the best possible."""
    from ratchet.monitoring.drift import drift_history
    from ratchet.training.model.fit import fit

    schema, cfg = ctx.schema, ctx.cfg
    onset = timeline.events["drift_onset"]
    ledger = ctx.ledger.history()
    promotions = [e for e in ledger if e.action in ("promote", "rollback")]
    before = [e for e in promotions if e.ts < onset]
    after = [e for e in promotions if e.ts >= onset]
    old = before[-1].to_version if before else None
    new = ctx.registry.alias("champion")
    pre = [f for i, f in sorted(data.holdout.items()) if i < data.drift_at]
    post = [f for i, f in sorted(data.holdout.items()) if i >= data.drift_at]
    detections = [d.to_dict() for d in drift_history(ctx.settings.root) if d.detected and d.checked_at >= onset]

    baseline_train = data.post_drift_train.sample(frac=1.0, random_state=cfg.train.seed)
    n_val = max(1, int(len(baseline_train) * cfg.train.val_fraction))
    baseline = fit(baseline_train.iloc[n_val:], baseline_train.iloc[:n_val], schema, cfg.train, progress=False)

    loaded: dict[str, Any] = {}  # each version loaded once
    post_acc: dict[str, float] = {}  # and scored on the post-drift holdouts once

    def predictor(version: str) -> Any:
        if version not in loaded:
            loaded[version] = ctx.registry.load_predictor(version)
        return loaded[version]

    def post_accuracy(version: str) -> float:
        if version not in post_acc:
            post_acc[version] = _mean_accuracy(predictor(version), post, schema)
        return post_acc[version]

    old_p = predictor(old) if old else None
    old_post = post_accuracy(old) if old else None
    # "Recovered": the first champion after the onset (a promote entry: the canary's last step, 100 %)
    # that beats the stale champion on the post-drift holdouts, not the final one: a better model that
    # a still better one replaces later has already recovered the loss.
    recovered_at = final_at = None
    for e in after:
        if e.action != "promote" or e.to_version in (None, old):
            continue
        if recovered_at is None and (old_post is None or post_accuracy(e.to_version) > old_post):
            recovered_at = e.ts
        if e.to_version == new:
            final_at = e.ts
    report = {
        "run": run,
        "mode": "event-driven",
        "t0": timeline.t0,
        "champion_versions": [e.to_version for e in promotions if e.action == "promote"],
        "drift_onset": onset,
        "drift_detected_at": detections[0]["checked_at"] if detections else None,
        "recovered_at": recovered_at,
        "time_to_recover_s": (recovered_at - onset) if recovered_at else None,
        "final_champion_at": final_at,
        "accuracy_after_drift_by_version": post_acc,
        "accuracy_before_drift": _mean_accuracy(old_p, pre, schema) if old_p else None,
        "accuracy_old_champion_after_drift": old_post,
        "accuracy_after_recovery": post_accuracy(new) if new else None,
        "accuracy_post_drift_only_model": _mean_accuracy(baseline.predictor, post, schema),
        "final_champion": new,
        "timeline": timeline.rows,
        "events": timeline.events,
        "drift": detections[0] if detections else None,
        "ledger": [
            {**e.__dict__, "evidence": e.figures()}
            for e in ledger
        ],
    }
    report["accuracy_new_champion_after_drift"] = report["accuracy_after_recovery"]
    report["non_2xx"] = sum(r["non_2xx"] for r in timeline.rows)
    return report
