"""Promotion stage: the gate, the alias moves, the ledger."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.promotion import promote as promotion
from ratchet.runtime.context import Context


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def evaluate_challenger(ctx: Context) -> dict:
    return promotion.evaluate_challenger(ctx.registry, ctx.repo, ctx.schema, ctx.cfg)


@task(cache_policy=NO_CACHE)
def promote_challenger(ctx: Context, result: dict, trigger: str) -> dict:
    """Move ``champion`` to the challenger when the gate said promote; else record the keep."""
    if result["decision"] != "promote":
        promotion.record_keep(ctx.registry, ctx.ledger, result, trigger)
        return {"action": "keep", "champion": result["champion"]}
    return promotion.promote(
        ctx.registry, ctx.ledger, result["challenger"], trigger=trigger,
        evidence=result["evidence"], data_commit=result["evidence"].get("data_commit"),
    )


@task(cache_policy=NO_CACHE)
def rollback_champion(ctx: Context, to: str | None, trigger: str) -> dict:
    return promotion.rollback(ctx.registry, ctx.ledger, to, trigger=trigger)


@task(cache_policy=NO_CACHE)
def publish_ledger(ctx: Context, limit: int = 50) -> str:
    rows = [
        {
            "id": e.id, "action": e.action, "trigger": e.trigger, "from": e.from_version,
            "to": e.to_version, "data_commit": (e.data_commit or "")[:12], "traffic": e.traffic,
            "p_value": e.evidence.get("p_value"),
        }
        for e in ctx.ledger.history(limit)
    ]
    return str(create_table_artifact(rows, key="promotion-ledger", description="promotion ledger"))
