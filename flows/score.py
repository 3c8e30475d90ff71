"""Batch scoring: a file, or the published batches at a data commit, scored by the champion
(or a named version) in chunks; the predictions (row ids, model version, the input's data
commit) committed to the data repository under ``predictions/`` and written to ``out``."""

from __future__ import annotations

from prefect import flow

from ratchet.runtime.options import RunOptions
from ratchet.serving.scoring import CHUNK_ROWS, ScoreResult
from tasks.scoring import (
    commit_predictions,
    find_scoring_input,
    load_scoring_model,
    publish_scoring_summary,
    score_rows,
    write_predictions,
)


@flow(name="score", log_prints=True)
def score_flow(
    path: str | None = None,
    ref: str | None = None,
    version: str | None = None,
    out: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    options: RunOptions = RunOptions(),
) -> ScoreResult:
    """Score a file or a data commit in chunks; predictions to the data repository and ``out``.

    Args:
        path: a CSV or Parquet file to score (or give ref)
        ref: a branch, tag or commit of the data repository: its published batches are scored
        version: the model version to score with (default: the champion)
        out: also write the predictions here (.csv, else Parquet)
        chunk_rows: rows scored at a time (bounds the memory)
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    source = find_scoring_input(ctx, path, ref)
    predictor = load_scoring_model(ctx, version)
    scored = score_rows(ctx, predictor, source, chunk_rows)
    commit = commit_predictions(ctx, scored)
    written = write_predictions(scored, out)
    result = publish_scoring_summary(scored, commit, written)
    print(f"scored {result.rows} rows with v{result.model_version}: {result.repo_path} at {result.repo_commit[:12]}")
    return result
