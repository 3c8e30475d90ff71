"""Deployments and their automations, defined in code (``prefect.yaml`` mirrors them).

No logic here: which flow runs on which event, debounce windows and cool-downs
(from config), and concurrency limits.

- ``train/on-data``: on ``ratchet.data.published`` (debounced: publishes within
  ``loop.debounce_s`` give one run, scheduled after the window), and on
  ``ratchet.drift.detected`` (at most once per ``loop.drift_cooldown_s``), and when one
  of its runs crashed (at most once per ``loop.crash_retry_cooldown_s``).
  One run at a time; a run asked for meanwhile waits its turn, and the run that starts
  cancels the due runs waiting behind it that would train the same thing (it reads the
  newer data): data faster than training queues no more than one training's worth.
- ``release/on-challenger``: on ``ratchet.model.registered``: the gate, then the rollout.
- ``monitor/scheduled``: every ``loop.monitor_interval_s``.
- ``gc/scheduled``: retention (``ratchet gc``) on the cron ``retention.schedule`` (daily).
- ``notify/webhook``: one webhook message, signed; what the notification automations run
  (``deployments/notifications.py``).
- ``ingest/manual``, ``evaluate/manual``, ``promote/manual``, ``rollback/manual``,
  ``score/manual`` (batch scoring of a file or a data commit): for the UI and CI.
"""

from __future__ import annotations

from datetime import timedelta

from ratchet.core import events as ev
from ratchet.core.config import RatchetConfig

NOTIFY_DEPLOYMENT = "notify/webhook"  # run by the notification automations with each message


def deployment_flows() -> dict:
    """The flow objects the deployments run, by flow name (``build_deployments`` builds from these)."""
    from flows.gc import gc_flow
    from flows.ingest import ingest_flow
    from flows.monitor import monitor_flow
    from flows.notify import notify_flow
    from flows.promote import evaluate_flow, promote_flow, rollback_flow
    from flows.release import release_flow
    from flows.score import score_flow
    from flows.train import train_flow

    return {f.name: f for f in (train_flow, release_flow, monitor_flow, gc_flow, ingest_flow, evaluate_flow,
                                promote_flow, rollback_flow, score_flow, notify_flow)}


def build_deployments(cfg: RatchetConfig) -> list:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.events import DeploymentEventTrigger

    flows = deployment_flows()
    train_flow, release_flow, monitor_flow, gc_flow = flows["train"], flows["release"], flows["monitor"], flows["gc"]
    ingest_flow, evaluate_flow, promote_flow = flows["ingest"], flows["evaluate"], flows["promote"]
    rollback_flow, score_flow, notify_flow = flows["rollback"], flows["score"], flows["notify"]

    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    # a monitoring run that finds one still running is not needed: the next one comes soon
    skip_if_running = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    loop = cfg.loop
    return [
        train_flow.to_deployment(
            name="on-data",
            concurrency_limit=one_at_a_time,
            triggers=[
                DeploymentEventTrigger(
                    name="retrain on published data",
                    expect={ev.DATA_PUBLISHED},
                    match={"prefect.resource.id": ev.ANY_DATA},
                    posture="Reactive",
                    threshold=1,
                    within=loop.debounce_s,
                    schedule_after=timedelta(seconds=loop.debounce_s),
                    parameters={"trigger": "data published", "skip_if_trained": True},
                ),
                DeploymentEventTrigger(
                    name="retrain on drift",
                    expect={ev.DRIFT_DETECTED},
                    match={"prefect.resource.id": ev.ANY_MODEL},
                    posture="Reactive",
                    threshold=1,
                    within=loop.drift_cooldown_s,
                    parameters={"trigger": "drift detected", "skip_if_trained": True},
                ),
                # a run whose process died (killed worker, evicted pod) is Crashed: run it again;
                # the study and the checkpoints resume it, and registration is idempotent
                DeploymentEventTrigger(
                    name="retrain after a crash",
                    expect={"prefect.flow-run.Crashed"},
                    match_related={"prefect.resource.role": "deployment", "prefect.resource.name": "on-data"},
                    posture="Reactive",
                    threshold=1,
                    within=loop.crash_retry_cooldown_s,
                    parameters={"trigger": "crash recovery", "skip_if_trained": True},
                ),
            ],
        ),
        release_flow.to_deployment(
            name="on-challenger",
            concurrency_limit=one_at_a_time,
            triggers=[
                DeploymentEventTrigger(
                    name="release a new challenger",
                    expect={ev.MODEL_REGISTERED},
                    match={"prefect.resource.id": ev.ANY_MODEL},
                    posture="Reactive",
                    threshold=1,
                    within=0,
                    parameters={"trigger": "challenger registered"},
                )
            ],
        ),
        monitor_flow.to_deployment(
            name="scheduled", interval=loop.monitor_interval_s, concurrency_limit=skip_if_running,
            parameters={"lookback_s": loop.monitor_interval_s},
        ),
        gc_flow.to_deployment(name="scheduled", cron=cfg.retention.schedule, concurrency_limit=skip_if_running),
        ingest_flow.to_deployment(name="manual"),
        evaluate_flow.to_deployment(name="manual"),
        promote_flow.to_deployment(name="manual", concurrency_limit=one_at_a_time),
        rollback_flow.to_deployment(name="manual"),
        score_flow.to_deployment(name="manual"),
        notify_flow.to_deployment(name=NOTIFY_DEPLOYMENT.split("/")[1]),
    ]
