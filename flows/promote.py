"""Evaluate the challenger against the champion; promote only on the gate's word."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ratchet.runtime.context import load_context
from tasks.promotion import evaluate_challenger, promote_challenger, publish_ledger, rollback_champion


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    result = evaluate_challenger(ctx)
    print(f"decision: {result['decision']} ({'; '.join(result['reasons'])})")
    return result


@flow(name="promote", log_prints=True)
def promote_flow(
    trigger: str = "manual",
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    result = evaluate_challenger(ctx)
    moved = promote_challenger(ctx, result, trigger)
    publish_ledger(ctx)
    print(f"{moved['action']}: champion is v{moved['champion']}")
    return {**moved, "decision": result["decision"], "evidence": result["evidence"]}


@flow(name="rollback", log_prints=True)
def rollback_flow(
    to: str | None = None,
    trigger: str = "manual",
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    moved = rollback_champion(ctx, to, trigger)
    publish_ledger(ctx)
    return moved
