"""Batch scoring: a file, or the published batches at a data commit, scored by the champion
(or a named version) chunk by chunk, so memory stays bounded whatever the input's size.

Each chunk goes through the same function the MLflow pyfunc's ``predict`` runs
(``RatchetPyfunc._frame``: the label and one probability column per class, or the number for
regression), gets its row ids (the row's position in the input, from 0), the model version
and the input's data commit, and is appended to one Parquet file; its predictions are
profiled with whylogs (up to ``PROFILE_ROWS`` evenly spaced rows of each chunk: whylogs checks
every value's type in Python, which costs more than the model) and the profiles merged, on a
thread that overlaps the model on the next chunk. The result is then committed to the data
repository under ``predictions/`` (``commit_predictions``) and copied to ``--out``.

Where predictions go in the repository: a branch of their own per run (``score-<id>``), cut
from the long-lived ``predictions`` branch (itself cut from main the first time) and merged
back into it. Not onto main: main's commits are the training data, and on lakeFS every merge
into main is relayed as ``ratchet.data.published``, which would retrain on nothing new. A run
branch rather than a direct commit: two scoring runs at once never mix their staged files,
and a run that fails leaves ``predictions`` untouched (its branch stays to look at).

Core library: no Prefect; progress goes to a callback (the flow's task turns it into a
Prefect progress artifact) and to ``say`` every chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ratchet.core.performance import EstimateAccumulator, positive_index
from ratchet.core.progress import step

log = logging.getLogger(__name__)

PREDICTIONS_BRANCH = "predictions"
PREDICTIONS_PREFIX = "predictions/"
CHUNK_ROWS = 100_000
PROFILE_ROWS = 10_000  # profiled per chunk at most (evenly spaced): whylogs costs more than the model
META_COLUMNS = ("row_id", "model_version", "data_commit")


class ScoringError(ValueError):
    """The input cannot be scored (no such file, no batches at the ref, missing columns)."""


@dataclass(frozen=True)
class ScoringInput:
    """What to score: a file (``kind="file"``, ``data_commit`` its ``sha256:`` content digest:
    a file outside the repository is in no commit) or the published batches at a data commit
    (``kind="ref"``, ``paths`` the batch files in order)."""

    kind: str  # file | ref
    data_commit: str
    paths: list[str]
    rows: int | None = None  # when known before reading (Parquet metadata)
    ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Scored:
    """Predictions written to a local Parquet file, with their merged whylogs profile."""

    version: str
    source: ScoringInput
    local_path: Path
    rows: int = 0
    chunks: int = 0
    seconds: float = 0.0
    profile: Any = None  # whylogs DatasetProfileView of the predictions
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreResult:
    """A scoring run: which model scored what, how many rows, where the predictions are."""

    model_version: str
    data_commit: str
    input: dict[str, Any]
    rows: int
    chunks: int
    seconds: float
    rows_per_s: float
    repo_commit: str
    repo_branch: str
    repo_path: str
    out: str | None
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- input
def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def _csv_rows(path: Path) -> int:
    """Data lines of a CSV (newlines less the header): for the progress only."""
    n, last = 0, b"\n"
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return max(0, n + (last != b"\n") - 1)


def resolve_input(repo, batch_prefix: str, path: str | None = None, ref: str | None = None) -> ScoringInput:
    """The input of a scoring run: exactly one of a file (CSV or Parquet) and a data ref."""
    if (path is None) == (ref is None):
        raise ScoringError("score either a FILE or a data ref (--ref), not both and not neither")
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ScoringError(f"no such file: {path}")
        if p.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ScoringError(f"{path}: a CSV or Parquet file is needed")
        rows = pq.ParquetFile(p).metadata.num_rows if p.suffix.lower() != ".csv" else _csv_rows(p)
        return ScoringInput("file", _file_digest(p), [str(p.resolve())], rows)
    commit = repo.resolve(ref)
    paths = [p for p in repo.list_objects(commit, batch_prefix) if p.endswith(".parquet")]
    if not paths:
        raise ScoringError(f"no published batches under {batch_prefix} at {ref} ({commit[:12]})")
    return ScoringInput("ref", commit, paths, None, ref)


def iter_chunks(repo, source: ScoringInput, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input as frames of at most ``chunk_rows`` rows, in order."""
    import io

    if source.kind == "file" and source.paths[0].lower().endswith(".csv"):
        yield from pd.read_csv(source.paths[0], chunksize=chunk_rows)
        return
    for p in source.paths:
        f = pq.ParquetFile(p if source.kind == "file" else io.BytesIO(repo.get_object(source.data_commit, p)))
        for rb in f.iter_batches(batch_size=chunk_rows):
            yield rb.to_pandas()


# ---------------------------------------------------------------------- scoring
def predict_frame(predictor, df: pd.DataFrame) -> pd.DataFrame:
    """What the pyfunc's ``predict`` returns for ``df`` (``RatchetPyfunc._frame``: the label
    and ``proba_<class>`` per class, or the number for regression), built without a Python
    loop over the rows (labels taken from the class array by index)."""
    if predictor.task == "regression":
        return pd.DataFrame({"prediction": predictor.predict(df)}, index=df.index)
    proba = predictor.predict_proba(df)
    classes = predictor.classes
    out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes], index=df.index)
    labels = np.empty(len(classes), dtype=object)
    labels[:] = classes
    out.insert(0, "prediction", labels[proba.argmax(axis=1)])
    return out


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """A column of ``n`` copies of ``value``, dictionary-encoded (one string stored)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _table(pred: pd.DataFrame, first_row: int, version: str, data_commit: str) -> pa.Table:
    n = len(pred)
    cols = {"row_id": pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
            "model_version": _constant(version, n), "data_commit": _constant(data_commit, n)}
    for c in pred.columns:
        cols[c] = pa.array(pred[c].to_numpy())
    return pa.table(cols)


def _check_columns(chunk: pd.DataFrame, features: list[str]) -> None:
    missing = [c for c in features if c not in chunk.columns]
    if missing:
        raise ScoringError(f"the input lacks the model's feature column(s): {', '.join(missing)}")


def profile_sample(pred: pd.DataFrame, max_rows: int = PROFILE_ROWS) -> pd.DataFrame:
    """The rows of a chunk's predictions that are profiled: all of them up to ``max_rows``, else
    every k-th row (evenly spaced, at most ``max_rows``); a label column of strings as a
    categorical (whylogs then profiles it as the same strings, without its per-value type checks)."""
    if len(pred) > max_rows:
        pred = pred.iloc[:: -(-len(pred) // max_rows)]
    label = pred.get("prediction")
    if label is not None and label.dtype == object and pd.api.types.infer_dtype(label, skipna=False) == "string":
        pred = pred.assign(prediction=label.astype("category"))
    return pred


class _Sink:
    """What happens to a chunk's predictions once predicted, on a thread of its own so that it
    overlaps the model on the next chunk: the Arrow table (row ids, version, data commit), the
    Parquet row group, the whylogs profile of a bounded sample merged into one view. At most
    one chunk waits, so memory stays at about two chunks."""

    def __init__(self, out_path: Path, version: str, data_commit: str, profile_rows: int | None):
        from concurrent.futures import ThreadPoolExecutor

        self.out_path, self.version, self.data_commit, self.profile_rows = out_path, version, data_commit, profile_rows
        self.writer: pq.ParquetWriter | None = None
        self.view = None
        self.pending = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="ratchet-score-sink")

    def _take(self, pred: pd.DataFrame, first_row: int) -> None:
        from ratchet.data.profiling import merge_profiles, profile_frame

        table = _table(pred, first_row, self.version, self.data_commit)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out_path, table.schema)
        self.writer.write_table(table)
        if self.profile_rows:
            sample = profile_sample(pred, self.profile_rows)
            view = profile_frame(sample)
            self.view = view if self.view is None else merge_profiles([self.view, view])

    def put(self, pred: pd.DataFrame, first_row: int) -> None:
        self.wait()
        self.pending = self.pool.submit(self._take, pred, first_row)

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)
            if self.writer is not None:
                self.writer.close()


def score_chunks(
    predictor,
    chunks: Iterator[pd.DataFrame],
    version: str,
    data_commit: str,
    out_path: Path,
    *,
    profile: bool = True,
    profile_rows: int = PROFILE_ROWS,
    progress: Callable[[int], None] | None = None,
    say: Callable[[str], None] = log.info,
    estimate: EstimateAccumulator | None = None,
) -> tuple[int, int, Any]:
    """The scoring core: predict each chunk, append it to ``out_path`` (Parquet), profile up to
    ``profile_rows`` of its rows (``profile_sample``). Returns (rows, chunks, merged whylogs
    profile or None); the profile's own counts are of the rows profiled. ``estimate`` (a
    classifier's): every row's calibrated confidence is added to it (``estimate_chunk``)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows, n_chunks = 0, 0
    features = list(predictor.schema.feature_names)
    sink = _Sink(out_path, version, data_commit, profile_rows if profile else None)
    try:
        for chunk in chunks:
            _check_columns(chunk, features)
            pred = predict_frame(predictor, chunk)
            if estimate is not None:
                estimate_chunk(predictor, pred, estimate)
            del chunk  # the next chunk is read while this one's predictions are written
            sink.put(pred, rows)
            rows += len(pred)
            n_chunks += 1
            if progress is not None:
                progress(rows)
            say(f"scored chunk {n_chunks}: {rows} rows so far")
    finally:
        sink.close()
    if sink.writer is None:
        raise ScoringError("the input has no rows")
    return rows, n_chunks, sink.view


def score(repo, predictor, source: ScoringInput, work_dir: Path, chunk_rows: int = CHUNK_ROWS,
          progress: Callable[[int], None] | None = None, say: Callable[[str], None] = log.info) -> Scored:
    """Score ``source`` with ``predictor`` (its ``version`` set) into ``work_dir``."""
    version = str(predictor.version)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    local = Path(work_dir) / f"{stamp}-v{version}-{source.data_commit.split(':')[-1][:12]}.parquet"
    t0 = time.perf_counter()
    est = None if predictor.task == "regression" else EstimateAccumulator(positive_index(predictor.classes))
    with step(f"scoring {source.kind} input", total=source.rows, unit="rows") as bar:
        def tell(done: int) -> None:
            bar.update(done)
            if progress is not None:
                progress(done)

        rows, n, view = score_chunks(predictor, iter_chunks(repo, source, chunk_rows), version, source.data_commit,
                                     local, progress=tell, say=say, estimate=est)
    scored = Scored(version, source, local, rows, n, time.perf_counter() - t0, view)
    scored.summary = summarize(view, rows)
    if est is not None and est.n:
        scored.summary["estimated_performance"] = estimated_summary(predictor, est)
    return scored


def estimate_chunk(predictor, pred: pd.DataFrame, acc: EstimateAccumulator) -> None:
    """Add a chunk's predictions (``predict_frame``'s) to the estimate of accuracy without labels:
    the top-label confidence through the model's calibration (``ratchet.core.performance``)."""
    proba = pred[[f"proba_{c}" for c in predictor.classes]].to_numpy(dtype=float)
    conf = proba.max(axis=1)
    cal = getattr(predictor, "calibration", None)
    acc.add(cal.apply(conf) if cal is not None else conf, proba.argmax(axis=1))


def estimated_summary(predictor, acc: EstimateAccumulator) -> dict[str, Any]:
    """The batch's estimated accuracy (F1 for two classes) with its sd, and the calibration it rests on."""
    out = acc.result().to_dict()
    cal = getattr(predictor, "calibration", None)
    if cal is None:
        out["method"] = "cbpe (uncalibrated confidence: a model trained before calibration)"
    else:
        out["calibration"] = {"method": cal.method, "rows": cal.rows, "ece_raw": _num(cal.ece_raw),
                              "ece": _num(cal.ece)}
    return out


def summarize(view, rows: int) -> dict[str, Any]:
    """Per prediction column, from the whylogs profile: count, nulls, mean (numbers) and the
    most frequent values (the label); ``profiled_rows``: how many of the ``rows`` the profile
    saw (``profile_sample``)."""
    out: dict[str, Any] = {"rows": rows, "profiled_rows": 0, "columns": {}}
    if view is None:
        return out
    frame = view.to_pandas()
    out["profiled_rows"] = int(frame["counts/n"].max()) if len(frame) else 0
    for col, r in frame.iterrows():
        entry = {"count": _num(r.get("counts/n")), "nulls": _num(r.get("counts/null"))}
        if _num(r.get("distribution/mean")) is not None:
            entry.update(mean=_num(r.get("distribution/mean")), min=_num(r.get("distribution/min")),
                         max=_num(r.get("distribution/max")))
        freq = r.get("frequent_items/frequent_strings")
        if isinstance(freq, list) and freq:
            entry["frequent"] = {str(f.value): int(f.est) for f in freq[:10]}
        out["columns"][str(col)] = entry
    return out


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else v


# ---------------------------------------------------------------------- outputs
def commit_predictions(repo, main_branch: str, scored: Scored) -> tuple[str, str, str]:
    """Commit the predictions, their whylogs profile and summary under
    ``predictions/<file stem>/`` on a run branch merged into ``predictions`` (module
    docstring: why). Returns (commit on ``predictions``, branch, path of the Parquet file)."""
    from ratchet.data.profiling import serialize_profile

    if not repo.branch_exists(PREDICTIONS_BRANCH):
        repo.create_branch(PREDICTIONS_BRANCH, main_branch)
    stem = scored.local_path.stem
    run_branch = f"score-{stem}"  # lakeFS branch ids are ^\w[-\w]*$: no "/"
    repo.create_branch(run_branch, PREDICTIONS_BRANCH)
    base = f"{PREDICTIONS_PREFIX}{stem}/"
    repo.put_object(run_branch, base + "predictions.parquet", scored.local_path.read_bytes())
    if scored.profile is not None:
        repo.put_object(run_branch, base + "profile.bin", serialize_profile(scored.profile))
    meta = {"model_version": scored.version, "data_commit": scored.source.data_commit,
            "input_kind": scored.source.kind, "rows": str(scored.rows)}
    repo.put_object(run_branch, base + "summary.json",
                    json.dumps({**meta, "input": scored.source.to_dict(), "summary": scored.summary},
                               default=str, indent=1).encode())
    repo.commit(run_branch, f"predictions of v{scored.version} on {scored.source.data_commit[:19]}", meta)
    head = repo.merge(run_branch, PREDICTIONS_BRANCH, f"publish predictions {stem}", meta)
    repo.delete_branch(run_branch)
    return head, PREDICTIONS_BRANCH, base + "predictions.parquet"


def export(scored: Scored, out: str | None, chunk_rows: int = CHUNK_ROWS) -> str | None:
    """Move the predictions to ``out`` (Parquet as written, CSV for ``.csv``, chunk by chunk)
    once they are committed; without ``out`` the local copy is only removed."""
    local = scored.local_path
    if not out:
        local.unlink(missing_ok=True)
        return None
    dest = Path(out).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() != ".csv":
        shutil.move(local, dest)
        return str(dest)
    with dest.open("w", newline="") as f:
        for i, rb in enumerate(pq.ParquetFile(local).iter_batches(batch_size=chunk_rows)):
            rb.to_pandas().to_csv(f, index=False, header=i == 0)
    local.unlink(missing_ok=True)
    return str(dest)


def result_of(scored: Scored, commit: tuple[str, str, str], out: str | None) -> ScoreResult:
    head, branch, path = commit
    return ScoreResult(
        model_version=scored.version, data_commit=scored.source.data_commit, input=scored.source.to_dict(),
        rows=scored.rows, chunks=scored.chunks, seconds=round(scored.seconds, 3),
        rows_per_s=round(scored.rows / scored.seconds, 1) if scored.seconds > 0 else 0.0,
        repo_commit=head, repo_branch=branch, repo_path=path, out=out, summary=scored.summary,
    )


def summary_markdown(result: ScoreResult) -> str:
    """The scoring run's summary artifact: what was scored by which model, and the profile of
    the predictions."""
    lines = [
        f"# predictions of v{result.model_version}",
        "",
        f"- input: {result.input['kind']} `{result.input.get('ref') or result.input['paths'][0]}`, "
        f"data commit `{result.data_commit}`",
        f"- rows: {result.rows} in {result.chunks} chunk(s), {result.seconds:.2f} s ({result.rows_per_s:.0f} rows/s)",
        f"- profile (whylogs): {result.summary.get('profiled_rows', 0)} of the rows, at most {PROFILE_ROWS} "
        "per chunk, evenly spaced",
        f"- repository: `{result.repo_path}` on `{result.repo_branch}` at `{result.repo_commit[:12]}`",
        f"- out: `{result.out}`" if result.out else "- out: none",
        *_estimated_line(result.summary.get("estimated_performance")),
        "",
        "| column | count | nulls | mean | min | max | most frequent |",
        "|---|---|---|---|---|---|---|",
    ]
    for col, e in result.summary.get("columns", {}).items():
        freq = ", ".join(f"{k}: {v}" for k, v in (e.get("frequent") or {}).items())
        lines.append(f"| {col} | {e.get('count')} | {e.get('nulls')} | {_fmt(e.get('mean'))} | "
                     f"{_fmt(e.get('min'))} | {_fmt(e.get('max'))} | {freq} |")
    return "\n".join(lines)


def _estimated_line(est: dict[str, Any] | None) -> list[str]:
    if not est:
        return []
    f1 = f", F1 {est['f1']:.3f}" if "f1" in est else ""
    return [f"- estimated accuracy without labels: {est['accuracy']:.3f} ± {est['accuracy_sd']:.3f}{f1} ({est['method']})"]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def progress_percent(done: int, total: int | None) -> float:
    """Progress in percent for a progress artifact (0 until the total is known... or 100 once
    the rows outnumber it)."""
    if not total:
        return 0.0
    return min(100.0, 100.0 * done / total)
