"""Promotion stage: the gate, the alias moves, the ledger."""

from __future__ import annotations

from prefect.artifacts import create_table_artifact

from ratchet.promotion import promote as promotion
from ratchet.promotion.ledger import ledger_rows
from ratchet.runtime.context import Context
from ratchet_prefect.options import ONCE_MORE, task


@task(**ONCE_MORE)
def evaluate_challenger(ctx: Context) -> promotion.Evaluation:
    return promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)


@task
def promote_challenger(ctx: Context, result: promotion.Evaluation, trigger: str) -> promotion.Outcome:
    """Move ``champion`` to the challenger when the gate said promote; else record the keep."""
    return promotion.settle(ctx.registry, ctx.ledger, result, trigger)


@task
def rollback_champion(ctx: Context, to: str | None, trigger: str) -> promotion.Outcome:
    return promotion.rollback(ctx.registry, ctx.ledger, to, trigger=trigger)


@task
def publish_ledger(ctx: Context, limit: int = 50) -> str:
    rows = ledger_rows(ctx.ledger.history(limit))
    return str(create_table_artifact(rows, key="promotion-ledger", description="promotion ledger"))
