"""Champion against challenger on the same rows, and the alias moves that follow.

Works through the core library alone (MLflow registry + ledger), so a
rollback never waits for the orchestrator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ratchet.core.config import RatchetConfig
from ratchet.core.schema import Schema
from ratchet.data.repository.base import DataRepository
from ratchet.promotion.decision import GateDecision, GateEvidence
from ratchet.promotion.ledger import Entry, Ledger
from ratchet.training.registry import Registry


class PromotionError(RuntimeError):
    pass


@dataclass
class Evaluation(GateDecision):
    """The gate's word on the challenger against the champion (``GateDecision``: decision,
    reasons, evidence), and which versions it compared."""

    champion: str | None = None
    challenger: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What an alias move did: ``promote``, ``keep``, ``noop``, ``rollback`` (or a canary's
    ``superseded``/``abort``), the champion after it, and its ledger entry."""

    action: str
    champion: str | None
    previous: str | None = None
    ledger_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "champion"}


@dataclass(frozen=True)
class PromotionResult:
    """A promote or release run: the gate's evaluation and what followed it, the alias
    move (``outcome``) or the canary that ramped the challenger (``canary``)."""

    evaluation: Evaluation
    outcome: Outcome | None = None
    canary: Any = None  # the canary's result (with ``to_dict``), when one ran

    def to_dict(self) -> dict[str, Any]:
        if self.canary is None:
            moved, steps = self.outcome.to_dict(), None
        else:
            moved = self.canary if isinstance(self.canary, dict) else self.canary.to_dict()
            steps = moved.get("steps")
        return {"challenger": self.evaluation.challenger, **moved, "decision": self.evaluation.decision, "evidence": self.evaluation.evidence.to_dict(),
                "canary": steps}


def _timed_proba(predictor, df, regression: bool = False):
    """Probabilities (or, for regression, the predicted numbers) and the seconds they took."""
    t0 = time.perf_counter()
    proba = predictor.predict(df) if regression else predictor.predict_proba(df)
    return proba, time.perf_counter() - t0


def evaluate_challenger(
    registry: Registry, repo: DataRepository, schema: Schema, cfg: RatchetConfig
) -> Evaluation:
    """Score both models on the held-out split of the challenger's own data commit and window."""
    # imported here: promote and rollback must not wait for the model stack
    from ratchet.promotion.gate import decide, decide_regression
    from ratchet.training.model.preprocess import target_values
    from ratchet.training.window import held_out_rows

    challenger = registry.alias("challenger")
    if challenger is None:
        raise PromotionError("no challenger: train one first (`ratchet train`)")
    champion = registry.alias("champion")
    lineage = registry.lineage(challenger)
    # held-out rows since the drift onset when the window reaches further back: the data a stale champion now meets
    holdout = lineage.holdout_batches
    data = held_out_rows(repo, lineage.data_commit, cfg, lineage.scored_batches, key=schema.row_key)
    regression = schema.target.is_regression
    y = target_values(data.rows[schema.target.name], schema.target)
    chall_proba, chall_s = _timed_proba(registry.load_predictor(challenger), data.rows, regression)
    champ_proba, champ_s = (None, None)
    if champion is not None:
        champ_predictor = registry.load_predictor(champion)
        champ_proba, champ_s = _timed_proba(champ_predictor, data.rows, regression)
    parts: list = []  # out-of-time rows (classification): batches the champion never saw, by the challenger's predecessors
    drifted = (_drift_alarm(repo, lineage.data_commit, champion)
               if champion is not None and cfg.gate.drifted_champion == "not_worse" else None)
    if regression:
        gate = decide_regression(
            y, champ_proba, chall_proba, cfg.gate, champion_drifted=drifted, challenger_latency_s=chall_s,
            champion_latency_s=champ_s,
        )
    else:
        later = None
        if champion is not None:
            later, parts = _out_of_time(registry, repo, schema, cfg, challenger, champion, champ_predictor)
        gate = decide(
            y, champ_proba, chall_proba, list(schema.target.classes), cfg.gate, out_of_time=later,
            champion_drifted=drifted, challenger_latency_s=chall_s, champion_latency_s=champ_s,
        )
    if champion is not None and cfg.gate.slices:  # not worse on any slice of the same rows
        from ratchet.promotion.slices import score_slices, with_slices

        sliced = score_slices(data.rows, y, champ_proba, chall_proba, cfg.gate, regression=regression)
        gate = with_slices(gate, sliced)
    evidence = gate.evidence.with_(
        data_commit=data.data_commit, data_window=data.window, test_rows=len(y),
        holdout_rule=f"newest {holdout} batch(es), since the drift onset" if holdout else "window",
        **({"out_of_time": [p.to_dict() for p in parts]} if parts else {}))
    return Evaluation(gate.decision, list(gate.reasons), evidence, champion=champion, challenger=challenger)


def _drift_alarm(repo: DataRepository, commit: str, champion: str) -> str | None:
    """The newest concept-drift alarm ingest raised against ``champion`` up to ``commit``, described; or None."""
    from ratchet.data.concept_checks import scored_history

    found = next((c for c in reversed(scored_history(repo, commit, champion)) if c.detected), None)
    if found is None:
        return None
    return (f"version {champion} scored {found.score:.6g} on batch {found.label} against an error of "
            f"{found.baseline_error:.3g} held out (p={found.p_value:.3g} <= {found.alpha:.3g})")


def _out_of_time(registry: Registry, repo: DataRepository, schema: Schema, cfg: RatchetConfig, challenger: str,
                 champion: str, champ_predictor) -> tuple[tuple | None, list]:
    """(labels, champion's probabilities, predecessors' probabilities) on the rows of the batches the
    champion never saw (``ratchet.promotion.out_of_time``), and those parts; (None, []) without any."""
    import numpy as np

    from ratchet.promotion.out_of_time import out_of_time_parts
    from ratchet.training.model.preprocess import target_values

    parts = out_of_time_parts(registry, repo, schema, cfg, challenger, champion)
    if not parts:
        return None, []
    ys, champs, chals = [], [], []
    for part in parts:
        ys.append(target_values(part.rows[schema.target.name], schema.target))
        stale = champ_predictor if part.stale is None else registry.load_predictor(part.stale)
        champs.append(stale.predict_proba(part.rows))
        chals.append(registry.load_predictor(part.version).predict_proba(part.rows))
    return (np.concatenate(ys), np.concatenate(champs), np.concatenate(chals)), parts


StepHook = Callable[[str], None]


def _move_aliases(
    registry: Registry,
    ledger: Ledger,
    target: dict[str, str | None],
    entry: Entry,
    *,
    expect_champion: str | None,
    on_step: StepHook | None = None,
) -> Entry:
    """Move aliases to ``target`` and append ``entry``, all or nothing.

    Compare-and-set: the champion must still be ``expect_champion`` when the
    move starts, so two promotions racing cannot both win. Each alias move is
    one MLflow statement, and ``champion`` is a single pointer, so there is
    never none or two. If any step fails, including the ledger append (the
    commit point), every alias already moved is put back in reverse order.
    ``on_step`` is called after each step with its name; tests inject failures
    through it.
    """
    before = registry.aliases()
    if before["champion"] != expect_champion:
        raise PromotionError(
            f"champion moved from {expect_champion} to {before['champion']} meanwhile; not moving it again"
        )
    done: list[str] = []
    try:
        for alias in ("previous", "challenger", "champion"):  # champion last: the switch itself
            if alias not in target or target[alias] == before[alias]:
                continue
            if target[alias] is None:
                registry.delete_alias(alias)
            else:
                registry.set_alias(alias, target[alias])
            done.append(alias)
            if on_step:
                on_step(alias)
        return ledger.append(entry)
    except BaseException:
        for alias in reversed(done):
            if before[alias] is None:
                registry.delete_alias(alias)
            else:
                registry.set_alias(alias, before[alias])
        raise


def promote(
    registry: Registry,
    ledger: Ledger,
    version: str,
    *,
    trigger: str,
    evidence: GateEvidence | None = None,
    data_commit: str | None = None,
    on_step: StepHook | None = None,
) -> Outcome:
    """Make ``version`` the champion; the old champion becomes ``previous``."""
    version = str(version)
    old = registry.alias("champion")
    if old == version:
        return Outcome("noop", old)
    target: dict[str, str | None] = {"champion": version}
    if old is not None:
        target["previous"] = old
    if registry.alias("challenger") == version:
        target["challenger"] = None
    entry = Entry(
        action="promote", trigger=trigger, model=registry.model_name, from_version=old,
        to_version=version, data_commit=data_commit, traffic=1.0,
        evidence={} if evidence is None else evidence.to_dict(),
    )
    entry = _move_aliases(registry, ledger, target, entry, expect_champion=old, on_step=on_step)
    return Outcome("promote", version, old, entry.id)


def record_keep(registry: Registry, ledger: Ledger, result: Evaluation, trigger: str) -> Outcome:
    entry = ledger.append(
        Entry(
            action="keep", trigger=trigger, model=registry.model_name, from_version=result.champion,
            to_version=result.challenger, data_commit=result.evidence.data_commit,
            evidence=result.evidence.to_dict(),
        )
    )
    return Outcome("keep", result.champion, ledger_id=entry.id)


def settle(registry: Registry, ledger: Ledger, result: Evaluation, trigger: str) -> Outcome:
    """Act on the gate's word: move ``champion`` to the challenger on ``promote``; record
    the ``keep`` otherwise. Either way the ledger says what the gate saw."""
    if result.decision != "promote":
        return record_keep(registry, ledger, result, trigger)
    return promote(
        registry, ledger, result.challenger, trigger=trigger,
        evidence=result.evidence, data_commit=result.evidence.data_commit,
    )


def rollback(
    registry: Registry,
    ledger: Ledger,
    to: str | None = None,
    *,
    trigger: str = "manual",
    on_step: StepHook | None = None,
) -> Outcome:
    """Restore ``to`` (default: the ``previous`` alias) as champion."""
    current = registry.alias("champion")
    target = str(to) if to is not None else registry.alias("previous")
    if target is None:
        raise PromotionError("nothing to roll back to: no 'previous' champion and no --to VERSION")
    if registry.marks(target).artifacts_removed:  # raises when there is no such version
        raise PromotionError(f"version {target} has no model any more: `ratchet gc` removed its artifacts")
    if target == current:
        raise PromotionError(f"version {target} is already the champion")
    moves: dict[str, str | None] = {"champion": target}
    if current is not None:
        moves["previous"] = current
    entry = Entry(
        action="rollback", trigger=trigger, model=registry.model_name, from_version=current,
        to_version=target, traffic=1.0,
    )
    entry = _move_aliases(registry, ledger, moves, entry, expect_champion=current, on_step=on_step)
    return Outcome("rollback", target, current, entry.id)
