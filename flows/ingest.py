"""Write-audit-publish one batch into the data repository."""

from __future__ import annotations

from prefect import flow

from ratchet.core.events import DRIFT_DETECTED
from ratchet.data.ingest import (
    AuditedBatch,
    Duplicate,
    IngestRejected,
    IngestResult,
    describe,
    rejection_message,
)
from ratchet.runtime.context import Context
from ratchet.runtime.options import RunOptions
from tasks.data import (
    adapt_champion_prior,
    audit_batch,
    commit_batch,
    emit_data_event,
    find_duplicate_batch,
    measure_batch_drift,
    publish_batch,
    record_concept_score,
    score_batch_concept,
    stage_batch,
)
from tasks.events import announce_model_event


def _duplicate(ctx: Context, audited: AuditedBatch, earlier: Duplicate) -> IngestResult:
    """Main holds these rows already: nothing more is written; the result names where they are."""
    duplicate = IngestResult.duplicate(audited, earlier, ctx.cfg.data.main_branch)
    emit_data_event(ctx, "duplicate", ctx.cfg.data.main_branch, earlier.commit, duplicate.to_dict())
    print(describe(duplicate.to_dict()))
    return duplicate


@flow(name="ingest", log_prints=True)
def ingest_flow(path: str, options: RunOptions = RunOptions()) -> IngestResult:
    """Audit one batch on a branch of its own; publish it to main only when it passes.

    Args:
        path: the CSV or Parquet batch to ingest (a path the runner can read)
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    audited = audit_batch(ctx, path)
    earlier = find_duplicate_batch(ctx, audited)
    if earlier is not None:  # main holds these rows already: write nothing, name where they are
        return _duplicate(ctx, audited, earlier)
    audited = measure_batch_drift(ctx, audited)
    audited, verdict = score_batch_concept(ctx, audited)  # labels changed meaning? (features alone cannot say)
    branch = stage_batch(ctx, audited, path)
    commit = commit_batch(ctx, branch, audited)
    if not audited.ok:
        emit_data_event(ctx, "rejected", branch, commit, audited.report())
        raise IngestRejected(rejection_message(audited), IngestResult.of(audited, "rejected", branch, commit).to_dict())
    main_commit = publish_batch(ctx, branch, audited)
    if isinstance(main_commit, Duplicate):  # an ingest of the same rows published while this one staged
        return _duplicate(ctx, audited, main_commit)
    emit_data_event(ctx, "published", ctx.cfg.data.main_branch, main_commit, audited.report())
    if verdict is not None:
        record_concept_score(ctx, verdict)
        if verdict.detected:
            announce_model_event(DRIFT_DETECTED, ctx.cfg.model_name, verdict.to_dict())
    prior = adapt_champion_prior(ctx, audited)  # after the concept score: the batch was predicted with older shares
    if prior is not None and prior["message"]:
        print(prior["message"])
    print(f"published {audited.batch_id}: {audited.rows} rows, main at {main_commit[:12]}")
    return IngestResult.of(audited, "published", branch, main_commit)
