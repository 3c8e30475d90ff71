"""Data stage: write-audit-publish of one batch."""

from __future__ import annotations

from pathlib import Path

from ratchet.data import ingest
from ratchet.monitoring import batch_scores
from ratchet.monitoring.concept import ConceptCheck
from ratchet.runtime.context import Context
from ratchet_prefect import events
from ratchet_prefect.options import HOUR_S, ONCE_MORE, STORE_BUSY, task


@task(timeout_seconds=HOUR_S)  # 10M rows: minutes (chunked, flat memory)
def audit_batch(ctx: Context, path: str) -> ingest.AuditedBatch:
    """Read, type, check and profile the batch in chunks (nothing is written yet)."""
    return ingest.audit_batch(Path(path), ctx.schema, ctx.cfg.data.chunk_rows)


@task
def find_duplicate_batch(ctx: Context, audited: ingest.AuditedBatch) -> ingest.Duplicate | None:
    """The batch on main that already holds these rows (listed paths only, no batch read)."""
    return ingest.find_duplicate(ctx.repo, audited, ctx.cfg.data)


@task
def measure_batch_drift(ctx: Context, audited: ingest.AuditedBatch) -> ingest.AuditedBatch:
    """The batch with its drift from main (and a violation, with ``data.drift_gate``)."""
    return ingest.measure_drift(ctx.repo, audited, ctx.cfg.data, ctx.cfg.drift, ctx.schema)


@task(**ONCE_MORE)
def score_batch_concept(ctx: Context, audited: ingest.AuditedBatch) -> batch_scores.ScoredBatch:
    """The champion's score on the labelled batch, tested against its held-out score (concept drift)."""
    return batch_scores.score_batch(ctx.repo, ctx.registry, ctx.schema, ctx.cfg, audited)


@task(**STORE_BUSY)
def record_concept_score(ctx: Context, verdict: ConceptCheck) -> None:
    """The verdict on the champion's registry version (tags ``concept_last_batch``, ``concept_onset``)."""
    batch_scores.record_on_champion(ctx.registry, verdict)


@task(**STORE_BUSY)
def adapt_champion_prior(ctx: Context, audited: ingest.AuditedBatch) -> dict | None:
    """The batch's class shares marked on the champion when its base rate moved (prior shift)."""
    found = batch_scores.adapt_prior(ctx.registry, ctx.schema, ctx.cfg, audited)
    return None if found is None else found.to_dict() | {"message": found.describe(audited.batch_id)}


@task(**STORE_BUSY)
def stage_batch(ctx: Context, audited: ingest.AuditedBatch, path: str) -> str:
    """Create the ingest branch and write batch, profile and report to it."""
    return ingest.stage_batch(ctx.repo, audited, Path(path), ctx.cfg.data)


@task
def commit_batch(ctx: Context, branch: str, audited: ingest.AuditedBatch) -> str:
    return ingest.commit_batch(ctx.repo, branch, audited)


@task
def publish_batch(ctx: Context, branch: str, audited: ingest.AuditedBatch) -> str | ingest.Duplicate:
    """Merge into main: main's new commit, or the ``Duplicate`` a concurrent ingest published."""
    return ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)


@task
def emit_data_event(ctx: Context, name: str, branch: str, commit: str, payload: dict) -> None:
    """``ratchet.data.published`` / ``rejected`` / ``duplicate`` for automations (and audits)."""
    events.emit_data_event(name, ctx.cfg.data.repository, branch, commit, payload)
