"""Data stage: write-audit-publish of one batch."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from ratchet.data import ingest
from ratchet.monitoring import batches
from ratchet.monitoring.concept import ConceptCheck
from ratchet.runtime.context import Context


@task(cache_policy=NO_CACHE, timeout_seconds=3600)  # 10M rows: minutes (chunked, flat memory)
def audit_batch(ctx: Context, path: str) -> ingest.AuditedBatch:
    """Read, type, check and profile the batch in chunks (nothing is written yet)."""
    return ingest.audit_batch(Path(path), ctx.schema, ctx.cfg.data.chunk_rows)


@task(cache_policy=NO_CACHE)
def find_duplicate_batch(ctx: Context, audited: ingest.AuditedBatch) -> ingest.Duplicate | None:
    """The batch on main that already holds these rows (listed paths only, no batch read)."""
    return ingest.find_duplicate(ctx.repo, audited, ctx.cfg.data)


@task(cache_policy=NO_CACHE)
def measure_batch_drift(ctx: Context, audited: ingest.AuditedBatch) -> dict | None:
    ingest.measure_drift(ctx.repo, audited, ctx.cfg.data, ctx.cfg.drift, ctx.schema)
    return audited.drift


@task(cache_policy=NO_CACHE, retries=1)
def score_batch_concept(ctx: Context, audited: ingest.AuditedBatch) -> ConceptCheck | None:
    """The champion's score on the labelled batch, tested against its held-out score (concept drift)."""
    return batches.score_batch(ctx.repo, ctx.registry, ctx.schema, ctx.cfg, audited)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def record_concept_score(ctx: Context, verdict: ConceptCheck) -> None:
    """The verdict on the champion's registry version (tags ``concept_last_batch``, ``concept_onset``)."""
    batches.record_on_champion(ctx.registry, verdict)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def stage_batch(ctx: Context, audited: ingest.AuditedBatch, path: str) -> str:
    """Create the ingest branch and write batch, profile and report to it."""
    return ingest.stage_batch(ctx.repo, audited, Path(path), ctx.cfg.data)


@task(cache_policy=NO_CACHE)
def commit_batch(ctx: Context, branch: str, audited: ingest.AuditedBatch) -> str:
    return ingest.commit_batch(ctx.repo, branch, audited)


@task(cache_policy=NO_CACHE)
def publish_batch(ctx: Context, branch: str, audited: ingest.AuditedBatch) -> str | ingest.Duplicate:
    """Merge into main: main's new commit, or the ``Duplicate`` a concurrent ingest published."""
    return ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)


@task(cache_policy=NO_CACHE)
def emit_data_event(ctx: Context, name: str, branch: str, commit: str, payload: dict) -> None:
    """``ratchet.data.published`` / ``rejected`` / ``duplicate`` for automations (and audits)."""
    emit_event(
        event=f"ratchet.data.{name}",
        resource={
            "prefect.resource.id": f"ratchet.data.{ctx.cfg.data.repository}",
            "ratchet.repository": ctx.cfg.data.repository,
            "ratchet.branch": branch,
            "ratchet.commit": commit,
        },
        payload=payload,
    )
