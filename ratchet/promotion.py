"""Champion against challenger on the same rows, and the alias moves that follow.

Works through the core library alone (MLflow registry + ledger), so a
rollback never waits for the orchestrator.
"""

from __future__ import annotations

import time
from typing import Any

from ratchet.config import RatchetConfig, Schema
from ratchet.data.base import DataRepository
from ratchet.dataset import training_data
from ratchet.gate import decide
from ratchet.ledger import Entry, Ledger
from ratchet.model.preprocess import encode_target
from ratchet.registry import Registry


class PromotionError(RuntimeError):
    pass


def _timed_proba(predictor, df):
    t0 = time.perf_counter()
    proba = predictor.predict_proba(df)
    return proba, time.perf_counter() - t0


def evaluate_challenger(
    registry: Registry, repo: DataRepository, schema: Schema, cfg: RatchetConfig
) -> dict[str, Any]:
    """Score both models on the held-out split of the challenger's own data commit and window."""
    challenger = registry.alias("challenger")
    if challenger is None:
        raise PromotionError("no challenger: train one first (`ratchet train`)")
    champion = registry.alias("champion")
    tags = registry.version_info(challenger)["tags"]
    data = training_data(repo, tags["data_commit"], cfg, int(tags.get("window_batches") or 0) or None)
    classes = list(schema.target.classes)
    y = encode_target(data.test[schema.target.name], classes)
    chall_proba, chall_s = _timed_proba(registry.load_predictor(challenger), data.test)
    champ_proba, champ_s = (None, None)
    if champion is not None:
        champ_proba, champ_s = _timed_proba(registry.load_predictor(champion), data.test)
    gate = decide(
        y, champ_proba, chall_proba, classes, cfg.gate,
        challenger_latency_s=chall_s, champion_latency_s=champ_s,
    )
    evidence = dict(gate.evidence)
    evidence.update({"data_commit": data.data_commit, "data_window": data.window, "test_rows": len(y)})
    return {
        "decision": gate.decision,
        "champion": champion,
        "challenger": challenger,
        "reasons": gate.reasons,
        "evidence": evidence,
    }


def promote(
    registry: Registry,
    ledger: Ledger,
    version: str,
    *,
    trigger: str,
    evidence: dict[str, Any] | None = None,
    data_commit: str | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion; the old champion becomes ``previous``.

    MLflow moves each alias in one statement, so there is exactly one
    champion at every moment: the old one until the single ``champion``
    update, the new one after it.
    """
    old = registry.alias("champion")
    if old == str(version):
        return {"action": "noop", "champion": old}
    if old is not None:
        registry.set_alias("previous", old)
    registry.set_alias("champion", str(version))
    if registry.alias("challenger") == str(version):
        registry.delete_alias("challenger")
    entry = ledger.append(
        Entry(
            action="promote", trigger=trigger, model=registry.model_name, from_version=old,
            to_version=str(version), data_commit=data_commit, traffic=1.0, evidence=evidence or {},
        )
    )
    return {"action": "promote", "champion": str(version), "previous": old, "ledger_id": entry.id}


def record_keep(registry: Registry, ledger: Ledger, result: dict[str, Any], trigger: str) -> None:
    ledger.append(
        Entry(
            action="keep", trigger=trigger, model=registry.model_name, from_version=result["champion"],
            to_version=result["challenger"], data_commit=result["evidence"].get("data_commit"),
            evidence=result["evidence"],
        )
    )


def rollback(
    registry: Registry, ledger: Ledger, to: str | None = None, *, trigger: str = "manual"
) -> dict[str, Any]:
    """Restore ``to`` (default: the ``previous`` alias) as champion."""
    current = registry.alias("champion")
    target = str(to) if to is not None else registry.alias("previous")
    if target is None:
        raise PromotionError("nothing to roll back to: no 'previous' champion and no --to VERSION")
    registry.version_info(target)  # raises when the version does not exist
    if target == current:
        raise PromotionError(f"version {target} is already the champion")
    registry.set_alias("champion", target)
    if current is not None:
        registry.set_alias("previous", current)
    entry = ledger.append(
        Entry(
            action="rollback", trigger=trigger, model=registry.model_name, from_version=current,
            to_version=target, traffic=1.0,
        )
    )
    return {"action": "rollback", "champion": target, "previous": current, "ledger_id": entry.id}
