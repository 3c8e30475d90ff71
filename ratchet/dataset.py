"""Training data from a data commit: a window of batches, split deterministically.

The same (commit, window, seed) always gives the same train/validation/test
rows, so champion and challenger are compared on identical held-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ratchet.config import RatchetConfig
from ratchet.data.base import DataRepository


@dataclass
class TrainingData:
    data_commit: str
    batches: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def window(self) -> str:
        return f"{len(self.batches)} batch(es): {self.batches[0]} .. {self.batches[-1]}"


def batch_paths(repo: DataRepository, ref: str, prefix: str) -> list[str]:
    """Published batch files at ``ref``, oldest first (names start with a UTC timestamp)."""
    return [p for p in repo.list_objects(ref, prefix) if p.endswith(".parquet")]


def load_window(
    repo: DataRepository, ref: str, prefix: str, window_batches: int | None
) -> tuple[str, list[str], pd.DataFrame]:
    commit = repo.resolve(ref)
    paths = batch_paths(repo, commit, prefix)
    if not paths:
        raise LookupError(f"no data at {ref} ({commit[:12]}): ingest a batch first (`ratchet ingest FILE`)")
    if window_batches:
        paths = paths[-window_batches:]
    frames = [repo.read_dataframe(commit, p) for p in paths]
    return commit, paths, pd.concat(frames, ignore_index=True)


def split_frame(
    df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(df))
    n_test = int(round(len(df) * test_fraction))
    n_val = int(round(len(df) * val_fraction))
    test = df.iloc[order[:n_test]]
    val = df.iloc[order[n_test : n_test + n_val]]
    train = df.iloc[order[n_test + n_val :]]
    if min(len(train), len(val), len(test)) == 0:
        raise ValueError(f"too few rows ({len(df)}) to split into train/validation/test")
    return train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)


def training_data(
    repo: DataRepository, ref: str, cfg: RatchetConfig, window_batches: int | None = None
) -> TrainingData:
    window = window_batches if window_batches is not None else cfg.train.window_batches
    commit, paths, df = load_window(repo, ref, cfg.data.batch_prefix, window)
    train, val, test = split_frame(df, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed)
    return TrainingData(commit, paths, train, val, test)
