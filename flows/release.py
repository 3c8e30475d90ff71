"""A new challenger: the gate first, then the rollout."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ratchet.context import load_context
from tasks.promotion import evaluate_challenger, promote_challenger, publish_ledger


@flow(name="release", log_prints=True)
def release_flow(
    trigger: str = "challenger registered",
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    ctx = load_context(config_files, overrides, home)
    result = evaluate_challenger(ctx)
    moved = promote_challenger(ctx, result, trigger)
    publish_ledger(ctx)
    print(f"{result['decision']}: champion is v{moved['champion']}")
    return {**moved, "decision": result["decision"], "evidence": result["evidence"]}
