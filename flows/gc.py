"""Retention: what ``ratchet gc`` does, as a scheduled flow (``gc/scheduled``)."""

from __future__ import annotations

from prefect import flow

from ratchet.runtime.gc import GcResult
from ratchet.runtime.options import RunOptions
from tasks.gc import (
    prune_flow_runs,
    prune_profiles,
    prune_rejected_branches,
    prune_repository,
    prune_versions,
    publish_gc_report,
    trim_logs,
)


@flow(name="gc", log_prints=True)
def gc_flow(dry_run: bool = False, options: RunOptions = RunOptions()) -> GcResult:
    """Retention (``ratchet gc``): rejected branches first (the repository part then frees what
    they alone reached), then unreachable data, old versions' artifacts and checkpoints, old
    live profiles, old flow runs of this server, long logs. Nothing a branch, tag, alias or ledger entry reaches is removed.

    Args:
        dry_run: report the bytes each part would free; remove nothing
        options: config files, overrides and home (left at the default by deployments)
    """
    ctx = options.context()
    branches = prune_rejected_branches(ctx, dry_run)
    repository = prune_repository(ctx, dry_run, branches.items if dry_run else [])
    result = GcResult(dry_run, [branches, repository, prune_versions(ctx, dry_run), prune_profiles(ctx, dry_run),
                                prune_flow_runs(ctx, dry_run), trim_logs(ctx, dry_run)])
    publish_gc_report(result)
    print(f"{'would free' if dry_run else 'freed'} {result.bytes_freed} bytes")
    return result
