"""``python -m deployments.serve``: register the deployments and automations and run
their flows in subprocesses of this process (what ``ratchet up`` starts, under
``ratchet_cli.supervise``), after the notification automations (``deployments/notifications.py``)
and the heartbeat automation (``deployments/heartbeats.py``)."""

from __future__ import annotations


def main() -> None:
    from prefect import serve

    from deployments import build_deployments
    from deployments.heartbeats import apply_heartbeat_automation, tag_served
    from deployments.notifications import apply_notifications
    from deployments.warm import fork_flow_runs
    from ratchet.core.config import load_config

    cfg = load_config()
    fork_flow_runs()  # each flow run a fork of a warm process, not a fresh interpreter
    apply_notifications(cfg)  # the webhook automations, when notify names a webhook
    apply_heartbeat_automation(cfg)  # a run whose runner died (no heartbeat) is marked Crashed
    serve(*tag_served(build_deployments(cfg)), heartbeat_seconds=cfg.loop.heartbeat_s)


if __name__ == "__main__":
    main()
