"""The demo's data: a synthetic stream with concept and data drift from one batch on."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ratchet.config import DemoConfig
from ratchet.synthetic import DEMO_TARGET, generate_batch, write_batch

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
    )


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
