"""Write-audit-publish one batch into the data repository."""

from __future__ import annotations

from prefect import flow

from ratchet.data.ingest import IngestRejected, IngestResult, rejection_message
from ratchet.runtime.options import RunOptions
from tasks.data import (
    audit_batch,
    commit_batch,
    emit_data_event,
    measure_batch_drift,
    publish_batch,
    stage_batch,
)


@flow(name="ingest", log_prints=True)
def ingest_flow(path: str, options: RunOptions = RunOptions()) -> IngestResult:
    ctx = options.context()
    audited = audit_batch(ctx, path)
    measure_batch_drift(ctx, audited)
    branch = stage_batch(ctx, audited, path)
    commit = commit_batch(ctx, branch, audited)
    if not audited.ok:
        emit_data_event(ctx, "rejected", branch, commit, audited.report())
        raise IngestRejected(rejection_message(audited), IngestResult.of(audited, "rejected", branch, commit).to_dict())
    main_commit = publish_batch(ctx, branch, audited)
    emit_data_event(ctx, "published", ctx.cfg.data.main_branch, main_commit, audited.report())
    print(f"published {audited.batch_id}: {len(audited.frame)} rows, main at {main_commit[:12]}")
    return IngestResult.of(audited, "published", branch, main_commit)
