"""Retention stage (``ratchet.runtime.gc``): one task per part, so each is retried apart and
shows in the run; a crash in any part leaves the home consistent for the next run."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact

from ratchet.core.reclaim import Reclaimed
from ratchet.runtime import gc
from ratchet.runtime.context import Context
from ratchet_prefect.options import HOUR_S, HOUSEKEEPING, task


@task(**HOUSEKEEPING)
def prune_rejected_branches(ctx: Context, dry_run: bool) -> Reclaimed:
    """Rejected ingest branches past their age; their reports kept in <home>/reports/rejected."""
    return gc.prune_rejected_branches(ctx, dry_run)


@task(**HOUSEKEEPING, timeout_seconds=HOUR_S)
def prune_repository(ctx: Context, dry_run: bool, without_branches: list[str]) -> Reclaimed:
    """The embedded repository's unreachable files (lakeFS: skipped, it collects its own)."""
    return gc.prune_repository(ctx, dry_run, without_branches)


@task(**HOUSEKEEPING)
def prune_versions(ctx: Context, dry_run: bool) -> Reclaimed:
    """Artifacts and checkpoints of versions no alias, ledger champion or newest-K keeps."""
    return gc.prune_versions(ctx, dry_run)


@task(**HOUSEKEEPING)
def prune_profiles(ctx: Context, dry_run: bool) -> Reclaimed:
    return gc.prune_profiles(ctx, dry_run)


@task(**HOUSEKEEPING)
def prune_flow_runs(ctx: Context, dry_run: bool) -> Reclaimed:
    """Flow runs of this server that ended before ``flow_run_age_days`` ago, with their logs."""
    from prefect.settings import PREFECT_API_URL

    return gc.prune_flow_runs(ctx, PREFECT_API_URL.value(), dry_run)


@task
def trim_logs(ctx: Context, dry_run: bool) -> Reclaimed:
    return gc.trim_logs(ctx, dry_run)


@task
def publish_gc_report(result: gc.GcResult) -> str:
    text = gc.describe(result.to_dict())
    return str(create_markdown_artifact(f"```\n{text}\n```", key="gc", description="garbage collection"))
