"""The lifecycle of a canary: begin (the service serves the pair, share 0), watch each step
at its share, record it in the ledger, then roll back at the first failed step or finish
(promote) after the last."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ratchet.core.config import CanaryConfig
from ratchet.delivery.admin import AdminClient, CanaryError
from ratchet.delivery.guardrails import CanaryMonitor, Check
from ratchet.delivery.results import CanaryResult, StepResult
from ratchet.promotion.decision import GateEvidence
from ratchet.promotion.ledger import Entry, Ledger
from ratchet.training.versions import VersionMarks

log = logging.getLogger(__name__)

ZERO_SHARE_TRIES = 3  # a rollback sets the share to 0 this many times before it gives up


def pin_challenger(registry, challenger: str | None) -> str | None:
    """The version to ramp: ``challenger`` (the ``challenger`` alias moved to it), else the
    alias's; None when there is neither."""
    challenger = challenger or registry.alias("challenger")
    if challenger is not None and registry.alias("challenger") != str(challenger):
        registry.set_alias("challenger", str(challenger))
    return challenger


def begin(admin: AdminClient, cfg: CanaryConfig, champion: str | None, challenger: str | None,
          data_commit: str | None = None) -> CanaryMonitor:
    """Make the service load the registry's aliases; check it serves ``champion`` and
    ``challenger`` with no challenger traffic yet; take the baseline read. ``data_commit``: the
    challenger's, which the canary's ledger entries carry."""
    if challenger is None:
        raise CanaryError("no challenger: register one (alias 'challenger') before a canary")
    if champion is None:
        raise CanaryError("no champion: promote a first model before a canary")
    body = admin.reload()
    served = (body.get("champion"), body.get("challenger"))
    if served != (str(champion), str(challenger)):
        raise CanaryError(
            f"the service serves champion={served[0]} challenger={served[1]} after a reload, "
            f"not {champion}/{challenger}: {body.get('errors') or 'is it on the same registry?'}"
        )
    admin.set_traffic(0.0)
    return CanaryMonitor(cfg, str(champion), str(challenger), admin.stats(), data_commit)


def watch_step(
    admin: AdminClient,
    monitor: CanaryMonitor,
    share: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Hold ``share`` (already set) for one analysis window, checking guardrails at every poll.

    Ends with ``breach`` at the first breach of a sequential test or a hard cap, or when the
    window is complete (``step_s`` passed and the challenger served ``min_requests``) and a
    magnitude guardrail (p99 against the champion, prediction drift) fails on the whole
    window; ``pass`` when it is complete and nothing failed; ``insufficient`` at
    ``max_step_s`` still short of ``min_requests`` (or, with ``require_feedback``, of
    ``min_feedback`` labels on the challenger's answers over the canary): not enough evidence,
    which ends the canary ``inconclusive``, not rolled back."""
    cfg = monitor.cfg
    t0 = clock()
    monitor.begin_step(share, admin.stats())
    check = Check([], {}, 0)
    while True:
        elapsed = clock() - t0
        sleep(max(0.0, min(cfg.poll_s, cfg.max_step_s - elapsed)))
        check = monitor.observe(admin.stats())
        elapsed = clock() - t0
        if check.superseded:
            return StepResult(share, "superseded", elapsed, check.breaches, check.evidence)
        if check.breaches:
            return StepResult(share, "breach", elapsed, check.breaches, check.evidence)
        short = _short_of_evidence(cfg, check)
        if elapsed >= cfg.step_s and not short:
            if check.end_of_step:
                return StepResult(share, "breach", elapsed, check.end_of_step, check.evidence)
            return StepResult(share, "pass", elapsed, [], check.evidence)
        if elapsed >= cfg.max_step_s:
            reasons = [f"not enough evidence in {elapsed:.0f} s: {why}" for why in short]
            return StepResult(share, "insufficient", elapsed, reasons, check.evidence)


def _short_of_evidence(cfg: CanaryConfig, check: Check) -> list[str]:
    """What the step still lacks before it can pass: requests served by the challenger in the
    step, and (``require_feedback``) labels on its answers over the canary."""
    short = []
    if check.challenger_requests < cfg.min_requests:
        short.append(f"the challenger served {check.challenger_requests} requests, "
                     f"fewer than min_requests={cfg.min_requests}")
    feedback = int((check.evidence.get("canary") or {}).get("challenger_feedback") or 0)
    if cfg.require_feedback and feedback < cfg.min_feedback:
        short.append(f"the challenger got {feedback} labels, fewer than min_feedback={cfg.min_feedback}")
    return short


# how a canary ends after a step that did not pass
ENDINGS = {"breach": "rollback", "insufficient": "inconclusive", "superseded": "superseded"}


def stop(admin: AdminClient, registry, ledger: Ledger, monitor: CanaryMonitor, result: StepResult,
         trigger: str, cfg: CanaryConfig, data_commit: str | None = None) -> CanaryResult:
    """End the canary after a step that did not pass: ``rollback`` on a breach (the alias is
    removed unless ``keep_challenger_on_rollback``), ``inconclusive`` when the step lacked
    evidence (the challenger keeps its alias: nothing speaks against it), ``superseded`` when a
    newer challenger took the alias. The share goes back to 0 and the champion stays in all three."""
    action = ENDINGS.get(result.decision, "rollback")
    keep = cfg.keep_challenger_on_rollback if action == "rollback" else True
    return roll_back(admin, registry, ledger, monitor, result.breaches, result.evidence, trigger,
                     keep_challenger=keep, data_commit=data_commit, action=action)


def data_commit_of(registry, version: str, gate: GateEvidence | None = None) -> str | None:
    """The data commit ``version`` was trained on, for the ledger: the one the offline ``gate``
    scored when a release ran it, else the version's registry tag; None when neither can say."""
    if gate is not None and gate.data_commit:
        return gate.data_commit
    try:
        return registry.lineage(version).data_commit or None
    except Exception:
        return None


def record_step(ledger: Ledger, model: str, monitor: CanaryMonitor, result: StepResult, trigger: str,
                data_commit: str | None = None) -> Entry:
    return ledger.append(
        Entry(
            action="traffic", trigger=trigger, model=model, from_version=monitor.champion,
            to_version=monitor.challenger, data_commit=data_commit, traffic=result.share,
            evidence={"decision": result.decision, "seconds": round(result.seconds, 3),
                      "breaches": result.breaches, **result.evidence},
        )
    )


def _share_to_zero(admin: AdminClient) -> list[str]:
    """Set the challenger's share to 0, trying ``ZERO_SHARE_TRIES`` times; the failed tries' errors."""
    errors = []
    for attempt in range(ZERO_SHARE_TRIES):
        try:
            admin.set_traffic(0.0)
            break
        except CanaryError as e:
            errors.append(str(e))
            time.sleep(0.5 * (attempt + 1))
    return errors


def roll_back(
    admin: AdminClient, registry, ledger: Ledger, monitor: CanaryMonitor, reason: list[str],
    evidence: dict[str, Any], trigger: str, keep_challenger: bool = False, data_commit: str | None = None,
    action: str = "rollback",
) -> CanaryResult:
    """Challenger share to 0 first (tried three times), then the registry and the ledger.
    ``action="superseded"``: a newer challenger holds the alias; this one is only tagged;
    ``"inconclusive"``: the same, with the tag ``canary=inconclusive``."""
    errors = _share_to_zero(admin)
    removed = False
    if not keep_challenger and registry.alias("challenger") == monitor.challenger:
        registry.delete_alias("challenger")
        removed = True
    try:
        registry.mark(monitor.challenger, VersionMarks(canary="rolled_back" if action == "rollback" else action))
    except Exception as e:  # a tag is a courtesy; the ledger is the record
        log.warning("could not tag version %s: %s", monitor.challenger, e)
    entry = ledger.append(
        Entry(
            action=action, trigger=trigger, model=registry.model_name, from_version=monitor.challenger,
            to_version=monitor.champion, data_commit=data_commit, traffic=0.0,
            evidence={"reason": reason, "challenger_alias_removed": removed,
                      "traffic_errors": errors, **evidence},
        )
    )
    if len(errors) == ZERO_SHARE_TRIES:
        raise CanaryError(f"rolled back in the registry, but the service did not take share 0: {errors[-1]}")
    try:
        admin.reload()
    except CanaryError as e:  # its watcher picks the alias change up anyway
        log.warning("reload after rollback: %s", e)
    return CanaryResult(action, monitor.champion, monitor.challenger, reason=reason, ledger_id=entry.id)


def finish(admin: AdminClient, registry, ledger: Ledger, monitor: CanaryMonitor, steps: list[StepResult],
           trigger: str, data_commit: str | None = None, gate: GateEvidence | None = None) -> CanaryResult:
    """Promote the challenger (aliases move, the ledger records it with the offline ``gate``'s
    evidence when a release ran one), have the service load the new aliases, then put the share
    back to 0 for the next challenger."""
    from ratchet.promotion.promote import promote

    evidence = (gate or GateEvidence()).with_(canary=[s.to_dict() for s in steps])
    moved = promote(registry, ledger, monitor.challenger, trigger=trigger, evidence=evidence,
                    data_commit=data_commit)
    body = admin.reload()
    if body.get("champion") != monitor.challenger:
        log.warning("service serves champion %s after the reload; its watcher will catch up",
                    body.get("champion"))
    admin.set_traffic(0.0)
    return CanaryResult(moved.action, moved.champion, monitor.challenger, previous=moved.previous,
                        ledger_id=moved.ledger_id)
