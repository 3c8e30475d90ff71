"""Training data from a data commit: a window of batches, split deterministically.

The same (commit, window, seed) always gives the same train/validation/test
rows, so champion and challenger are compared on identical held-out rows; each
row's side follows from a hash of its content, so it keeps that side in every
window it appears in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ratchet.core.config import RatchetConfig
from ratchet.data.batch_ref import BatchRef
from ratchet.data.repository.base import DataRepository, ObjectNotFound
from ratchet.data.rows import unit_interval


@dataclass
class TrainingData:
    data_commit: str
    batches: list[str]
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    rule: str = "all"  # how the window was chosen (recorded in the model's lineage)
    # the newest batches whose held-out rows the gate scores (those since the drift onset); None: all
    holdout_batches: int | None = None

    @property
    def window(self) -> str:
        return window_label(self.batches, self.rule)


@dataclass(frozen=True)
class HeldOut:
    """The held-out rows of the newest batches at a commit: what the gate scores both models on."""

    data_commit: str
    batches: list[str]
    rows: pd.DataFrame

    @property
    def window(self) -> str:
        return window_label(self.batches, f"last {len(self.batches)}")


def window_label(batches: list[str], rule: str) -> str:
    return f"{len(batches)} batch(es): {batches[0]} .. {batches[-1]} ({rule})"


def batch_paths(repo: DataRepository, ref: str, prefix: str) -> list[str]:
    """Published batch files at ``ref``, oldest first (names start with a UTC timestamp)."""
    return [p for p in repo.list_objects(ref, prefix) if p.endswith(".parquet")]


def published_batches(repo: DataRepository, ref: str, prefix: str) -> tuple[str, list[str]]:
    """(the commit ``ref`` names now, its batch files oldest first): resolved and listed once, so
    the window's choice and its read see the same data. A run asked for by an automation passes
    no ref, so it reads main as it is when the run starts: the latest data wins."""
    commit = repo.resolve(ref)
    paths = batch_paths(repo, commit, prefix)
    if not paths:
        raise LookupError(f"no data at {ref} ({commit[:12]}): ingest a batch first (`ratchet ingest FILE`)")
    return commit, paths


def _read(repo: DataRepository, commit: str, paths: list[str]) -> pd.DataFrame:
    return pd.concat([repo.read_dataframe(commit, p) for p in paths], ignore_index=True)


def drift_onset(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig) -> int:
    """How many of the newest batches in ``paths`` came after the latest drift onset.

    Walks back from the newest batch, growing a window of batches that look like it: each older
    batch's whylogs profile (stored at ingest) is compared with the merged profile of the window
    so far, on every column (the label too, so a shift in class balance counts), with the drift
    test and thresholds of ``cfg.drift``; the first batch that drifts from the window ends it.
    No drift anywhere gives every batch. Drift in P(label | features) alone leaves no trace in
    the profiles: ``concept_onset`` and ``live_onset`` find that one."""
    from ratchet.data.profiling import deserialize_profile, drift_report, merge_profiles

    def profile(path: str):
        try:
            return deserialize_profile(repo.get_object(commit, BatchRef.from_path(path).profile_key))
        except ObjectNotFound:  # a batch written without `ratchet ingest` has no profile
            return None

    newest = profile(paths[-1])
    if newest is None:
        return len(paths)
    window = [newest]
    # one test per older batch: Bonferroni over the walk, or a long clean history finds a false onset
    # (benchmarks/drift_recovery.py, stream "none": an onset at batch 11 of 16 without it)
    walk = cfg.drift.model_copy(update={"p_value": cfg.drift.p_value / max(1, len(paths) - 1)})
    for path in reversed(paths[:-1]):
        older = profile(path)
        if older is None or drift_report(merge_profiles(window), older, walk).detected:
            break
        window.append(older)
    return len(window)


def concept_onset(repo: DataRepository, commit: str, paths: list[str]) -> int | None:
    """How many of the newest batches in ``paths`` came at or after the latest concept-drift onset
    found at ingest (the champion's score on a labelled batch, ``ratchet.concept.onset`` in the
    batch's commit metadata); None when no batch in ``paths`` was found to start one."""
    index = {BatchRef.from_path(p).batch_id: i for i, p in enumerate(paths)}
    onsets = [
        index[c.metadata["ratchet.concept.onset"]]
        for c in repo.log(commit)
        if c.metadata.get("ratchet.concept.detected") == "True" and c.metadata.get("ratchet.concept.onset") in index
    ]
    return len(paths) - max(onsets) if onsets else None


def live_onset(paths: list[str], since: float | None) -> int | None:
    """How many of the newest batches were published at or after ``since`` (the start of the live
    feedback window where the champion's accuracy changed; batch ids begin with their UTC time)."""
    if since is None:
        return None
    n = sum(1 for p in paths if BatchRef.from_path(p).published_at >= since)
    return n or None


def _rows(repo: DataRepository, commit: str, paths: list[str]) -> list[int]:
    """Rows per batch, from the commit metadata ingest wrote (the frame itself when absent)."""
    known = {c.metadata.get("ratchet.batch_id"): c.metadata.get("ratchet.rows") for c in repo.log(commit)}
    return [int(known.get(BatchRef.from_path(p).batch_id) or len(repo.read_dataframe(commit, p))) for p in paths]


def _since_drift(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig,
                 live_since: float | None) -> tuple[int, str, int]:
    """(batches to train on, the rule in words, batches the gate scores) for ``since_drift``.

    The onset is the earliest one any evidence gives (feature profiles, the champion's score on
    labelled batches, live feedback): a false alarm of one source can then only cut a window
    short when no other source saw an earlier change. With fewer than ``train.min_window_rows``
    rows after it, older batches are added (newest first) until there are; the gate still
    scores only the batches after the onset."""
    found = {
        "feature profiles": drift_onset(repo, commit, paths, cfg),
        "batch scores": concept_onset(repo, commit, paths),
        "live feedback": live_onset(paths, live_since),
    }
    found = {k: v for k, v in found.items() if v is not None and v < len(paths)}
    if not found:
        return len(paths), f"since drift onset: {len(paths)} of the last {len(paths)} (none found)", len(paths)
    n = max(found.values())
    evidence = "+".join(k for k, v in found.items() if v == n)
    rule = f"since drift onset: {n} of the last {len(paths)} ({evidence})"
    need = cfg.train.min_window_rows
    if need:
        rows = _rows(repo, commit, paths)
        k = n
        while k < len(paths) and sum(rows[-k:]) < need:
            k += 1
        if k > n:
            return k, f"{rule}, +{k - n} older batch(es) for min_window_rows {need}", n
    return n, rule, n


def _choose_window(
    repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig, window_batches: int | None,
    live_since: float | None = None,
) -> tuple[int | None, str, int | None]:
    """(last K batches or None for all, the rule in words, the newest batches the gate scores)."""
    if window_batches is not None:
        return window_batches, f"last {window_batches}", None
    rule, k = cfg.train.window_rule, cfg.train.window_batches
    if rule == "last":
        return k, f"last {k}", None
    if rule == "since_drift":
        return _since_drift(repo, commit, paths[-k:] if k else paths, cfg, live_since)
    return None, "all", None


def split_frame(
    df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, key: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/validation/test by each row's content: a row whose hash (mixed with ``seed``) falls
    in [0, test_fraction) is held out, in the next ``val_fraction`` it validates, else it trains.

    ``key``: the columns hashed (``Schema.row_key``: features and target; default every
    column). Ignored columns must stay out of it: rows alike in features and label but with
    different ids would otherwise land on both sides, and the held-out score would flatter.

    A row's side depends on that row alone, so identical rows (within a batch or across batches)
    always land together and a batch added later moves no earlier row between splits. The
    fractions hold in expectation (each split's size is binomial), not to the row; a split by
    rank could hit them exactly but would move rows near the cut whenever rows are added."""
    test, val = _sides(df, val_fraction, test_fraction, seed, key)
    parts = (df[~test & ~val], df[val], df[test])
    if min(len(p) for p in parts) == 0:
        raise ValueError(f"too few rows ({len(df)}) to split into train/validation/test")
    train, val_df, test_df = (p.reset_index(drop=True) for p in parts)
    return train, val_df, test_df


def _sides(df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int,
           key: Sequence[str] | None = None) -> tuple[pd.Series, pd.Series]:
    """(held-out rows, validation rows) as masks: each row's side follows from the hash of its
    ``key`` columns (all when None)."""
    u = unit_interval(df if key is None else df[[c for c in key if c in df.columns]], seed)
    return u < test_fraction, (u >= test_fraction) & (u < test_fraction + val_fraction)


def held_out_rows(repo: DataRepository, commit: str, cfg: RatchetConfig, newest: int | None,
                  key: Sequence[str] | None = None) -> HeldOut:
    """The held-out rows of the newest ``newest`` batches at ``commit`` (None: all), as the
    training's split put them aside: what the gate scores champion and challenger on. Each
    batch is read and cut to its held-out rows in turn (a row's side depends on that row
    alone), so no training or validation frame of the window is built."""
    commit, paths = published_batches(repo, commit, cfg.data.batch_prefix)
    paths = paths[-newest:] if newest else paths
    parts = []
    for path in paths:
        df = repo.read_dataframe(commit, path)
        test, _ = _sides(df, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed, key)
        parts.append(df[test])
    return HeldOut(commit, paths, pd.concat(parts, ignore_index=True))


def training_data(
    repo: DataRepository, ref: str, cfg: RatchetConfig, window_batches: int | None = None,
    live_since: float | None = None, key: Sequence[str] | None = None,
) -> TrainingData:
    """The window of batches at ``ref``: the last ``window_batches`` when given, else by
    ``cfg.train.window`` (all, last K, or since the latest drift onset; ``live_since``: when
    the live monitor saw the champion's accuracy change, one more source of onsets; ``key``:
    the columns that decide a row's split, ``Schema.row_key``)."""
    commit, paths = published_batches(repo, ref, cfg.data.batch_prefix)
    window, rule, holdout = _choose_window(repo, commit, paths, cfg, window_batches, live_since)
    paths = paths[-window:] if window else paths
    train, val, test = split_frame(_read(repo, commit, paths), cfg.train.val_fraction, cfg.train.test_fraction,
                                   cfg.train.seed, key)
    holdout = holdout if holdout is not None and holdout < len(paths) else None
    return TrainingData(commit, paths, train, val, test, rule, holdout)
