"""Write-audit-publish one batch into the data repository."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ratchet.data.ingest import IngestRejected, rejection_message
from ratchet.runtime.context import load_context
from tasks.data import (
    audit_batch,
    commit_batch,
    emit_data_event,
    measure_batch_drift,
    publish_batch,
    stage_batch,
)


@flow(name="ingest", log_prints=True)
def ingest_flow(
    path: str,
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    audited = audit_batch(ctx, path)
    measure_batch_drift(ctx, audited)
    branch = stage_batch(ctx, audited, path)
    commit = commit_batch(ctx, branch, audited)
    if not audited.ok:
        emit_data_event(ctx, "rejected", branch, commit, audited.report())
        raise IngestRejected(
            rejection_message(audited),
            {**audited.report(), "status": "rejected", "branch": branch, "commit": commit},
        )
    main_commit = publish_batch(ctx, branch, audited)
    emit_data_event(ctx, "published", ctx.cfg.data.main_branch, main_commit, audited.report())
    print(f"published {audited.batch_id}: {len(audited.frame)} rows, main at {main_commit[:12]}")
    return {**audited.report(), "status": "published", "branch": branch, "commit": main_commit}
