"""``python -m deployments.serve``: register the deployments and automations and run
their flows in subprocesses of this process (what ``ratchet up`` starts, under
``ratchet_cli.supervise``), after the notification automations (``deployments/notifications.py``)
and the heartbeat automation (``deployments/heartbeats.py``)."""

from __future__ import annotations

from typing import Any


def served(deployment: Any) -> dict[str, Any]:
    """``Runner.add_flow``'s arguments for a deployment built by ``flow.to_deployment``: the same
    deployment, given with its flow object.

    Why not ``prefect.serve(*deployments)``: since Prefect 3.9 its runner keeps in memory only
    the flows given through ``add_flow``, and starts a run of any other deployment as
    ``python -m prefect.engine``, a fresh interpreter that imports the flow's file again (16-37 s
    for a training run on two busy cores, where a release, with lighter imports, started in 1-3 s);
    a flow it holds runs through ``run_flow_in_subprocess``, which ``deployments.warm`` makes a
    fork of the warm forkserver."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    limit = None
    if deployment.concurrency_limit:
        options = deployment.concurrency_options
        limit = ConcurrencyLimitConfig(limit=deployment.concurrency_limit,
                                       **({"collision_strategy": options.collision_strategy} if options else {}))
    return {
        "name": deployment.name, "schedules": deployment.schedules or None, "triggers": deployment.triggers,
        "parameters": deployment.parameters, "description": deployment.description, "tags": deployment.tags,
        "version": deployment.version, "enforce_parameter_schema": deployment.enforce_parameter_schema,
        "concurrency_limit": limit,
    }


def main() -> None:
    from deployments import build_deployments, deployment_flows
    from deployments.heartbeats import apply_heartbeat_automation, tag_served
    from deployments.notifications import apply_notifications
    from deployments.warm import fork_flow_runs
    from ratchet.core.config import load_config

    cfg = load_config()
    fork_flow_runs()  # each flow run a fork of a warm process, not a fresh interpreter
    apply_notifications(cfg)  # the webhook automations, when notify names a webhook
    apply_heartbeat_automation(cfg)  # a run whose runner died (no heartbeat) is marked Crashed
    run_served(tag_served(build_deployments(cfg)), deployment_flows(), heartbeat_seconds=cfg.loop.heartbeat_s,
               query_seconds=cfg.loop.runner_poll_s)


def run_served(deployments: list, flows: dict[str, Any], **runner: Any) -> None:
    """What ``prefect.serve(*deployments)`` does, each deployment given with its flow object
    (``flows``, by flow name; see ``served``), until the process is stopped. ``runner``: Prefect
    ``Runner`` arguments; no limit on concurrent runs, as ``serve``'s default; the runner pauses
    its deployments' schedules on shutdown."""
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    served_by = Runner(limit=None, **runner)
    for deployment in deployments:
        served_by.add_flow(flows[deployment.flow_name], **served(deployment))
    try:
        asyncio.run(served_by.start())
    except (KeyboardInterrupt, TerminationSignal):  # a stop, as prefect.serve takes it: exit 0
        pass


if __name__ == "__main__":
    main()
