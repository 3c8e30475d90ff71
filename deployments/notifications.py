"""Notification automations: Prefect automations that send a signed JSON message to a webhook.

No logic beyond the table: which events notify, and the JSON template each message is
rendered from (Prefect renders it with Jinja: ``event``, and ``flow_run`` for an event about
or inside a flow run). Every message names the model, the versions, the reason and the flow
run's link. An automation's action runs the ``notify/webhook`` deployment (``flows/notify.py``)
with the rendered message, which posts it with ``X-Ratchet-Signature-256``: the HMAC-SHA256 of
the body keyed by the Prefect Secret block ``notify.secret_block`` (Prefect's own call-webhook
action cannot sign a body; ``docs/webhook_receiver.py`` checks it). ``apply_notifications``
(run by ``python -m deployments.serve``, i.e. ``ratchet up``) saves ``notify.webhook_url`` as
the Webhook block ``notify.block`` (or uses an existing block of that name), makes the Secret
block with a random value when there is none, and creates the automations, replacing ones of
the same name. They are not in ``prefect.yaml``: an automation's action names its deployment by
id, known only once it exists.

- ``ratchet: data rejected``: ``ratchet.data.rejected``
- ``ratchet: drift detected``: ``ratchet.drift.detected``
- ``ratchet: challenger promoted`` / ``kept``: ``ratchet.model.promoted`` / ``ratchet.model.kept``
- ``ratchet: canary rolled back`` / ``inconclusive``: ``ratchet.model.rolled_back`` /
  ``ratchet.model.canary_inconclusive``
- ``ratchet: approval requested``: ``ratchet.model.approval_requested``
- ``ratchet: flow run failed``: ``prefect.flow-run.Failed`` / ``Crashed`` of any ratchet flow
  (not ``notify``'s own: a receiver that is down must not loop)
"""

from __future__ import annotations

from ratchet.core import events as ev
from ratchet.core.config import RatchetConfig

FLOWS = ["ingest", "train", "evaluate", "promote", "rollback", "release", "canary", "monitor", "score", "demo"]

# the JSON each ratchet event posts: its payload carries the model, versions, reason and link
# (a key it lacks, e.g. the challenger of `ratchet rollback`'s event, is null: an undefined
# value fails the whole message). A null flow_run_url is made from flow_run_id by the notify flow:
# Prefect registers its `ui_url` filter for the call-webhook action's templates, not for a
# run-deployment action's parameters
MODEL_MESSAGE = """{
  "notification": "{{ event.event }}",
  "model": {{ (event.payload.model or event.resource['ratchet.model'] or '%(model)s')|tojson }},
  "action": {{ (event.payload.action or none)|tojson }},
  "champion": {{ (event.payload.champion or none)|tojson }},
  "challenger": {{ (event.payload.challenger or none)|tojson }},
  "reason": {{ (event.payload.reason or event.payload.kind or '')|tojson }},
  "flow_run_url": {{ (event.payload.flow_run_url or none)|tojson }},
  "flow_run_id": {{ (flow_run.id|string if flow_run else none)|tojson }},
  "occurred": "{{ event.occurred }}"
}"""
DATA_MESSAGE = """{
  "notification": "{{ event.event }}",
  "model": "%(model)s",
  "repository": {{ event.resource['ratchet.repository']|tojson }},
  "branch": {{ event.resource['ratchet.branch']|tojson }},
  "commit": {{ event.resource['ratchet.commit']|tojson }},
  "reason": {{ (event.payload.reason or event.payload.failures or event.payload.errors or 'batch rejected')|tojson }},
  "flow_run_url": null,
  "flow_run_id": {{ (flow_run.id|string if flow_run else none)|tojson }},
  "occurred": "{{ event.occurred }}"
}"""
FAILED_MESSAGE = """{
  "notification": "{{ event.event }}",
  "model": "%(model)s",
  "flow": {{ event.related|selectattr('role', 'equalto', 'flow')|map(attribute='name')|first|tojson }},
  "flow_run": {{ event.resource.name|tojson }},
  "state": {{ event.resource['prefect.state-name']|tojson }},
  "reason": {{ event.resource['prefect.state-message']|tojson }},
  "flow_run_url": null,
  "flow_run_id": {{ event.resource.id.split('.')[-1]|tojson }},
  "occurred": "{{ event.occurred }}"
}"""

# name, events, match on the resource, match on a related resource, template
NOTIFICATIONS = [
    ("ratchet: data rejected", [ev.DATA_REJECTED], {"prefect.resource.id": ev.ANY_DATA}, None, DATA_MESSAGE),
    ("ratchet: drift detected", [ev.DRIFT_DETECTED], {"prefect.resource.id": ev.ANY_MODEL}, None, MODEL_MESSAGE),
    ("ratchet: challenger promoted", [ev.MODEL_PROMOTED], {"prefect.resource.id": ev.ANY_MODEL}, None, MODEL_MESSAGE),
    ("ratchet: challenger kept", [ev.MODEL_KEPT], {"prefect.resource.id": ev.ANY_MODEL}, None, MODEL_MESSAGE),
    ("ratchet: canary rolled back", [ev.MODEL_ROLLED_BACK], {"prefect.resource.id": ev.ANY_MODEL}, None,
     MODEL_MESSAGE),
    ("ratchet: canary inconclusive", [ev.MODEL_CANARY_INCONCLUSIVE], {"prefect.resource.id": ev.ANY_MODEL}, None,
     MODEL_MESSAGE),
    ("ratchet: approval requested", [ev.MODEL_APPROVAL_REQUESTED], {"prefect.resource.id": ev.ANY_MODEL}, None,
     MODEL_MESSAGE),
    ("ratchet: flow run failed", ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
     {"prefect.resource.id": "prefect.flow-run.*"}, {"prefect.resource.role": "flow", "prefect.resource.name": FLOWS},
     FAILED_MESSAGE),
]


def build_notifications(cfg: RatchetConfig, deployment_id) -> list:
    """The automations, each running the ``notify/webhook`` deployment ``deployment_id`` with its
    message (a Jinja parameter: Prefect renders it from the event, as it would a webhook payload)."""
    from prefect.automations import Automation
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    return [
        Automation(
            name=name, description=f"send signed JSON to the webhook on {', '.join(events)}", enabled=True,
            trigger=EventTrigger(expect=set(events), match=match, match_related=related or {},
                                 posture=Posture.Reactive, threshold=1, within=0),
            actions=[RunDeployment(source="selected", deployment_id=deployment_id, parameters={
                "body": {"__prefect_kind": "jinja", "template": template % {"model": cfg.model_name}}})],
        )
        for name, events, match, related, template in NOTIFICATIONS
    ]


def webhook_block(cfg: RatchetConfig):
    """The Webhook block: saved from ``notify.webhook_url`` when set, else an existing block of
    that name; None when there is neither (no notifications)."""
    from prefect.blocks.webhook import Webhook

    if cfg.notify.webhook_url:
        block = Webhook(method="POST", url=cfg.notify.webhook_url, headers={"Content-Type": "application/json"},
                        allow_private_urls=True)
        block.save(cfg.notify.block, overwrite=True)
        return Webhook.load(cfg.notify.block)
    try:
        return Webhook.load(cfg.notify.block)
    except ValueError:
        return None


def notify_deployment_id(cfg: RatchetConfig):
    """The id of ``notify/webhook``: as deployed (``prefect deploy``, a runner), else applied now
    from the code (the runner that serves it keeps the id)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from deployments import NOTIFY_DEPLOYMENT, build_deployments

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(NOTIFY_DEPLOYMENT).id
        except ObjectNotFound:
            pass
    flow_name, name = NOTIFY_DEPLOYMENT.split("/")
    return next(d for d in build_deployments(cfg) if (d.flow_name, d.name) == (flow_name, name)).apply()


def apply_notifications(cfg: RatchetConfig) -> list:
    """Create the notification automations (replacing ones of the same name); [] without a webhook."""
    from prefect.automations import Automation

    if webhook_block(cfg) is None:
        return []
    from ratchet_prefect.secrets import ensure_secret_block

    ensure_secret_block(cfg.notify.secret_block)
    created = []
    for automation in build_notifications(cfg, notify_deployment_id(cfg)):
        try:
            Automation.read(name=automation.name).delete()
        except ValueError:
            pass
        created.append(automation.create())
    return created
