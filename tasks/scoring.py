"""Scoring stage: a file or a data commit scored in chunks by the champion (or a named
version); predictions committed to the data repository, copied to ``--out``, profiled."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from ratchet.runtime.context import Context
from ratchet.serving import scoring
from ratchet.serving.scoring import Scored, ScoreResult, ScoringInput
from ratchet_prefect.options import ONCE_MORE, task


@task
def find_scoring_input(ctx: Context, path: str | None, ref: str | None) -> ScoringInput:
    return scoring.resolve_input(ctx.repo, ctx.cfg.data.batch_prefix, path, ref)


@task(**ONCE_MORE)
def load_scoring_model(ctx: Context, version: str | None):
    """The named version, else the champion (the predictor carries its version)."""
    return ctx.registry.load_predictor(version or "champion")


@task
def score_rows(ctx: Context, predictor, source: ScoringInput, chunk_rows: int) -> Scored:
    """Chunk by chunk; a progress artifact (percent of the rows, when known) and a log line per chunk."""
    artifact = create_progress_artifact(0.0, key="score-progress", description=f"scoring {source.kind} input")
    scored = scoring.score(ctx.repo, predictor, source, ctx.settings.root / "scoring", chunk_rows,
                         progress=lambda done: update_progress_artifact(artifact, scoring.progress_percent(done, source.rows)),
                         say=print)
    update_progress_artifact(artifact, 100.0)
    return scored


@task(**ONCE_MORE)
def commit_predictions(ctx: Context, scored: Scored) -> tuple[str, str, str]:
    return scoring.commit_predictions(ctx.repo, ctx.cfg.data.main_branch, scored)


@task
def write_predictions(scored: Scored, out: str | None) -> str | None:
    return scoring.export(scored, out)


@task
def publish_scoring_summary(scored: Scored, commit: tuple[str, str, str], out: str | None) -> ScoreResult:
    """The run's result, and its summary (the whylogs profile of the predictions) as a markdown artifact."""
    result = scoring.result_of(scored, commit, out)
    create_markdown_artifact(scoring.summary_markdown(result), key="score-summary",
                             description=f"predictions of v{result.model_version}")
    return result
