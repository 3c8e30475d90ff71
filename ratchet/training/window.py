"""Training data from a data commit: a window of batches, split deterministically.

The same (commit, window, seed) always gives the same train/validation/test
rows, so champion and challenger are compared on identical held-out rows; each
row's side follows from a hash of its content, so it keeps that side in every
window it appears in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ratchet.core.config import RatchetConfig
from ratchet.core.schema import Schema
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
    # rule "best": every candidate window with its proxy score, and the rule that chose among them
    candidates: list[dict] = field(default_factory=list)
    choice_rule: str | None = None

    @property
    def window(self) -> str:
        return window_label(self.batches, self.rule)


@dataclass(frozen=True)
class OnsetWalk:
    """What the walk over feature profiles found: ``batches`` since the onset (every batch: none);
    ``ignored``: features that drifted but the champion barely uses (listed, no onset);
    ``prior_shift``: the label's base-rate change, newest batch against the older ones (Cramer's V
    or KS D) when it passes the drift test; reported on its own and never an onset: a seasonal
    base rate moves every month without P(label | features) changing."""

    batches: int
    ignored: tuple[str, ...] = ()
    prior_shift: float | None = None

    def notes(self) -> str:
        out = []
        if self.ignored:
            out.append(f"shifts the champion ignores: {', '.join(self.ignored)}")
        if self.prior_shift is not None:
            out.append(f"label base-rate shift {self.prior_shift:.3f} (prior shift, not an onset)")
        return "; ".join(out)


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


def drift_onset(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig,
                schema: Schema | None = None, importance: Mapping[str, float] | None = None) -> OnsetWalk:
    """How many of the newest batches in ``paths`` came after the latest drift onset.

    Walks back from the newest batch, growing a window of batches that look like it: each older
    batch's whylogs profile (stored at ingest) is compared with the merged profile of the window
    so far, with the drift test and thresholds of ``cfg.drift``; the first batch that drifts from
    the window ends it. No drift anywhere gives every batch. Drift in P(label | features) alone
    leaves no trace in the profiles: ``concept_onset`` and ``live_onset`` find that one.

    With ``schema``, only ``schema.drift_feature_names`` are tested: not the label (its base rate
    is ``prior_shift``, reported apart) nor date/time columns (their calendar parts differ between
    time-ordered batches by construction). ``importance``: the champion's permutation importance
    per feature; a shift in a feature it ignores is listed, never an onset. The test needs both a
    p-value and an effect of ``cfg.drift.min_effect``: at large n the effect decides, so the
    batch size does not. Without a schema every column is tested (the label included)."""
    from ratchet.data.profile_drift import drift_report
    from ratchet.data.profiling import deserialize_profile, merge_profiles

    read: dict[str, object] = {}

    def profile(path: str):
        if path not in read:
            try:
                read[path] = deserialize_profile(repo.get_object(commit, BatchRef.from_path(path).profile_key))
            except ObjectNotFound:  # a batch written without `ratchet ingest` has no profile
                read[path] = None
        return read[path]

    newest = profile(paths[-1])
    if newest is None:
        return OnsetWalk(len(paths))
    columns = schema.drift_feature_names if schema is not None else None
    window, ignored = [newest], set()
    # one test per older batch: Bonferroni over the walk, or a long clean history finds a false onset
    # (benchmarks/drift_recovery.py, stream "none": an onset at batch 11 of 16 without it)
    walk = cfg.drift.model_copy(update={"p_value": cfg.drift.p_value / max(1, len(paths) - 1)})
    for path in reversed(paths[:-1]):
        older = profile(path)
        if older is None:
            break
        report = drift_report(merge_profiles(window), older, walk, columns, importance)
        ignored.update(report.ignored_shifts)
        if report.detected:
            break
        window.append(older)
    prior = None
    if schema is not None and len(paths) > 1:
        older_views = [v for v in (profile(p) for p in paths[:-1]) if v is not None]
        if older_views:
            label = drift_report(merge_profiles(older_views), newest, walk, [schema.target.name])
            if label.detected:  # noted only when the label alone passes the drift test
                prior = label.features[schema.target.name]["effect"]
    return OnsetWalk(len(window), tuple(sorted(ignored)), prior)


def concept_onset(repo: DataRepository, commit: str, paths: list[str]) -> int | None:
    """How many of the newest batches in ``paths`` came at or after the latest concept-drift onset
    found at ingest (the champion's score on a labelled batch, ``ratchet.concept.onset`` in the
    batch's commit metadata); None when no batch in ``paths`` was found to start one."""
    from ratchet.data.concept_checks import ConceptCheck

    index = {BatchRef.from_path(p).batch_id: i for i, p in enumerate(paths)}
    checks = (ConceptCheck.from_metadata(c.metadata) for c in repo.log(commit))
    onsets = [index[c.onset] for c in checks if c is not None and c.detected and c.onset in index]
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


@dataclass(frozen=True)
class _Chosen:
    window: int | None  # the newest batches to train on; None: all
    rule: str
    holdout: int | None = None  # the newest batches the gate scores; None: the whole window
    candidates: tuple[dict, ...] = ()
    choice_rule: str | None = None
    frames: tuple[pd.DataFrame, ...] = ()  # the window's batches when the choice read them already


@dataclass(frozen=True)
class _Evidence:
    """What the data says about onsets: batches since each source's onset (only sources that found
    one), the earliest of them, and the profile walk's notes."""

    onsets: dict[str, int]
    walk: OnsetWalk

    @property
    def earliest(self) -> int | None:
        return max(self.onsets.values()) if self.onsets else None


def _evidence(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig, live_since: float | None,
              schema: Schema | None, importance: Mapping[str, float] | None) -> _Evidence:
    walk = drift_onset(repo, commit, paths, cfg, schema, importance)
    found = {
        "feature profiles": walk.batches,
        "batch scores": concept_onset(repo, commit, paths),
        "live feedback": live_onset(paths, live_since),
    }
    return _Evidence({k: v for k, v in found.items() if v is not None and v < len(paths)}, walk)


def _with_notes(rule: str, walk: OnsetWalk) -> str:
    notes = walk.notes()
    return f"{rule}; {notes}" if notes else rule


def _since_drift(repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig, found: _Evidence) -> _Chosen:
    """The window for ``since_drift``.

    The onset is the earliest one any evidence gives (feature profiles, the champion's score on
    labelled batches, live feedback): a false alarm of one source can then only cut a window
    short when no other source saw an earlier change. With fewer than ``train.min_window_rows``
    rows after it, older batches are added (newest first) until there are; the gate still
    scores only the batches after the onset."""
    n = found.earliest
    if n is None:
        return _Chosen(len(paths), _with_notes(f"since drift onset: {len(paths)} of the last {len(paths)} (none found)",
                                               found.walk), len(paths))
    evidence = "+".join(k for k, v in found.onsets.items() if v == n)
    rule = _with_notes(f"since drift onset: {n} of the last {len(paths)} ({evidence})", found.walk)
    need = cfg.train.min_window_rows
    if need:
        rows = _rows(repo, commit, paths)
        k = n
        while k < len(paths) and sum(rows[-k:]) < need:
            k += 1
        if k > n:
            return _Chosen(k, f"{rule}, +{k - n} older batch(es) for min_window_rows {need}", n)
    return _Chosen(n, rule, n)


def _best(frames: list[pd.DataFrame], paths: list[str], cfg: RatchetConfig, schema: Schema,
          found: _Evidence) -> _Chosen:
    """The window for ``best``: the candidate whose proxy best predicts the newest batch
    (``ratchet.training.choice``); the gate scores the batches since the earliest onset when the
    chosen window reaches further back. Too few held-out rows to judge by: since the onset."""
    from ratchet.training.choice import choose, proxy_for, recency_sample

    onset = found.earliest
    split = lambda df: sides(df, cfg, schema.row_key)  # noqa: E731
    proxy = proxy_for(cfg.train, schema, sum(len(f) for f in frames), split)
    choice = choose(frames, schema, split, cfg.train.seed, found.onsets, proxy=proxy, tie_z=cfg.train.window_tie_z)
    if choice is None:
        k = onset or len(paths)
        return _Chosen(k, _with_notes(f"since drift onset: {k} of the last {len(paths)} (too few held-out rows "
                                      "in the newest batch to compare windows)", found.walk), k)
    k = choice.batches
    rule = _with_notes(f"best of {len(choice.candidates)} candidates: {choice.chosen}, {k} of the last "
                       f"{len(paths)}", found.walk)
    holdout = onset if onset is not None and onset < k else None
    chosen = frames[-k:] if choice.half_life is None else recency_sample(frames[-k:], choice.half_life, cfg.train.seed)
    return _Chosen(k, rule, holdout, tuple(c.to_dict() for c in choice.candidates), choice.rule, tuple(chosen))


def _choose_window(
    repo: DataRepository, commit: str, paths: list[str], cfg: RatchetConfig, window_batches: int | None,
    live_since: float | None = None, schema: Schema | None = None, importance: Mapping[str, float] | None = None,
) -> _Chosen:
    if window_batches is not None:
        return _Chosen(window_batches, f"last {window_batches}")
    rule, k = cfg.train.window_rule, cfg.train.window_batches
    if rule == "last":
        return _Chosen(k, f"last {k}")
    if rule in ("since_drift", "best"):
        paths = paths[-k:] if k else paths
        found = _evidence(repo, commit, paths, cfg, live_since, schema, importance)
        if rule == "best" and len(paths) > 1:
            if schema is None:
                raise ValueError("train.window 'best' needs the schema (the proxy fits on its features)")
            return _best([repo.read_dataframe(commit, p) for p in paths], paths, cfg, schema, found)
        return _since_drift(repo, commit, paths, cfg, found)
    return _Chosen(None, "all")


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


def sides(df: pd.DataFrame, cfg: RatchetConfig, key: Sequence[str] | None = None) -> tuple[pd.Series, pd.Series]:
    """(held-out rows, validation rows) of ``df`` as the training's split puts them, with the
    config's fractions and seed: what the gate, the window choice and the drift checks cut by."""
    return _sides(df, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed, key)


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
        test, _ = sides(df, cfg, key)
        parts.append(df[test])
    return HeldOut(commit, paths, pd.concat(parts, ignore_index=True))


def training_data(
    repo: DataRepository, ref: str, cfg: RatchetConfig, window_batches: int | None = None,
    live_since: float | None = None, schema: Schema | None = None, importance: Mapping[str, float] | None = None,
    key: Sequence[str] | None = None,
) -> TrainingData:
    """The window of batches at ``ref``: the last ``window_batches`` when given, else by
    ``cfg.train.window`` (all, last K, since the latest drift onset, or the best candidate;
    ``live_since``: when the live monitor saw the champion's accuracy change, one more source of
    onsets). ``schema`` keeps the label and date/times out of the onset walk (and is needed by
    ``best``); ``importance``: the champion's permutation importance per feature; ``key``: the
    columns that decide a row's split (default ``schema.row_key``: features and target)."""
    key = key if key is not None or schema is None else schema.row_key
    commit, paths = published_batches(repo, ref, cfg.data.batch_prefix)
    chosen = _choose_window(repo, commit, paths, cfg, window_batches, live_since, schema, importance)
    paths = paths[-chosen.window:] if chosen.window else paths
    df = pd.concat(chosen.frames, ignore_index=True) if chosen.frames else _read(repo, commit, paths)
    train, val, test = split_frame(df, cfg.train.val_fraction, cfg.train.test_fraction, cfg.train.seed, key)
    holdout = chosen.holdout if chosen.holdout is not None and chosen.holdout < len(paths) else None
    return TrainingData(commit, paths, train, val, test, chosen.rule, holdout, list(chosen.candidates),
                        chosen.choice_rule)
