"""Training data from a data commit: a window of batches, split deterministically.

The same (commit, window, seed) always gives the same train/validation/test
rows, so champion and challenger are compared on identical held-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ratchet.core.config import RatchetConfig
from ratchet.data.repository.base import DataRepository, ObjectNotFound


@dataclass
class TrainingData:
    data_commit: str
    batches: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    rule: str = "all"  # how the window was chosen (recorded in the model's lineage)

    @property
    def window(self) -> str:
        return f"{len(self.batches)} batch(es): {self.batches[0]} .. {self.batches[-1]} ({self.rule})"


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


def drift_onset(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig) -> int:
    """How many of the newest batches in ``paths`` came after the latest drift onset.

    Walks back from the newest batch, growing a window of batches that look like it: each older
    batch's whylogs profile (stored at ingest) is compared with the merged profile of the window
    so far, on every column (the label too, so a shift in class balance counts), with the drift
    test and thresholds of ``cfg.drift``; the first batch that drifts from the window ends it.
    No drift anywhere gives every batch. Drift in P(label | features) alone leaves no trace in
    the profiles: use ``window: last`` for that."""
    from ratchet.data.ingest import PROFILE_PREFIX
    from ratchet.data.profiling import deserialize_profile, drift_report, merge_profiles

    def profile(path: str):
        batch_id = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        try:
            return deserialize_profile(repo.get_object(commit, f"{PROFILE_PREFIX}{batch_id}.bin"))
        except ObjectNotFound:  # a batch written without `ratchet ingest` has no profile
            return None

    newest = profile(paths[-1])
    if newest is None:
        return len(paths)
    window = [newest]
    for path in reversed(paths[:-1]):
        older = profile(path)
        if older is None or drift_report(merge_profiles(window), older, cfg.drift).detected:
            break
        window.append(older)
    return len(window)


def _choose_window(
    repo: DataRepository, ref: str, cfg: RatchetConfig, window_batches: int | None
) -> tuple[int | None, str]:
    """(last K batches or None for all, the rule in words)."""
    if window_batches is not None:
        return window_batches, f"last {window_batches}"
    rule, k = cfg.train.window_rule, cfg.train.window_batches
    if rule == "last":
        return k, f"last {k}"
    if rule == "since_drift":
        commit = repo.resolve(ref)
        paths = batch_paths(repo, commit, cfg.data.batch_prefix)
        if k:
            paths = paths[-k:]
        if not paths:
            return None, "all"
        n = drift_onset(repo, commit, paths, cfg)
        return n, f"since drift onset: {n} of the last {len(paths)}"
    return None, "all"


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
    """The window of batches at ``ref``: the last ``window_batches`` when given, else by
    ``cfg.train.window`` (all, last K, or since the latest drift onset)."""
    ref = repo.resolve(ref)  # one commit for the window choice and the read
    window, rule = _choose_window(repo, ref, cfg, window_batches)
    commit, paths, df = load_window(repo, ref, cfg.data.batch_prefix, window)
    train, val, test = split_frame(df, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed)
    return TrainingData(commit, paths, train, val, test, rule)
