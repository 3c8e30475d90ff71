"""``python -m deployments.serve``: register the deployments and automations and run
their flows in subprocesses of this process (what ``ratchet up`` starts), after the
notification automations (``deployments/notifications.py``)."""

from __future__ import annotations


def main() -> None:
    from prefect import serve

    from deployments import build_deployments
    from deployments.notifications import apply_notifications
    from ratchet.core.config import load_config

    cfg = load_config()
    apply_notifications(cfg)  # the webhook automations, when notify names a webhook
    serve(*build_deployments(cfg))


if __name__ == "__main__":
    main()
