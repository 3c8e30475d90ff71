"""The heartbeat automation: a flow run whose runner died is marked Crashed.

The runner (``python -m deployments.serve``) runs every flow run in a subprocess that sends a
``prefect.flow-run.heartbeat`` event every ``loop.heartbeat_s`` seconds. When the runner is
killed its runs die with it (``ratchet_cli.supervise`` kills what it leaves behind) and
nothing reports their state: they would stay Running, holding the deployments' concurrency
slots. This proactive automation expects, after each heartbeat (or a run's Running event),
another event of the same run within ``loop.heartbeat_timeout_s``; when none comes it moves the
run to Crashed, and the ``retrain after a crash`` trigger (``deployments/__init__.py``) runs
training again. A run paused or suspended sent its state event, so it is not crashed. A run
still starting (Pending: its process is spawning, 30 s on a loaded two-core machine) is not
watched, so a slow start is never taken for a death.

Only the runner's runs carry ``TAG`` (the runner adds it to the deployments it serves): a flow
run of a command in its own process, or of a worker with another heartbeat period, is never
judged by this window. ``apply_heartbeat_automation`` keeps an existing identical automation,
so a restarted runner does not reset the windows that are watching its predecessor's runs.
"""

from __future__ import annotations

from ratchet.core.config import RatchetConfig

NAME = "ratchet: crash runs whose runner died"
TAG = "ratchet-runner"
STARTS = ["prefect.flow-run.heartbeat", "prefect.flow-run.Running"]


def build_heartbeat_automation(cfg: RatchetConfig):
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    loop = cfg.loop
    return Automation(
        name=NAME,
        description=f"runs tagged {TAG} send a heartbeat every {loop.heartbeat_s} s; "
                    f"one silent for {loop.heartbeat_timeout_s} s is marked Crashed",
        enabled=True,
        trigger=EventTrigger(
            after=set(STARTS),
            expect={"prefect.flow-run.*"},  # another heartbeat, or any state change
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=loop.heartbeat_timeout_s),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no heartbeat for {loop.heartbeat_timeout_s} s: the runner that ran it died",
        )],
    )


def tag_served(deployments: list) -> list:
    """The deployments, their runs tagged as the runner's (what the automation watches)."""
    for d in deployments:
        d.tags = [*d.tags, TAG]
    return deployments


def apply_heartbeat_automation(cfg: RatchetConfig):
    """Create the automation, or replace one of the same name that differs; an identical one
    is kept as it is (its open windows with it)."""
    from prefect.automations import Automation

    wanted = build_heartbeat_automation(cfg)
    try:
        existing = Automation.read(name=NAME)
    except ValueError:
        return wanted.create()
    if _spec(existing) == _spec(wanted):
        return existing
    existing.delete()
    return wanted.create()


def _spec(automation) -> tuple:
    return (automation.enabled, automation.trigger.model_dump(exclude={"id"}),
            [a.model_dump() for a in automation.actions])
