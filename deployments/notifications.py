"""Notification automations: Prefect automations whose action posts JSON to a Webhook block.

No logic beyond the table: which events notify, and the JSON template each message is
rendered from (Prefect renders it with Jinja: ``event``, and ``flow_run`` for an event about
or inside a flow run). Every message names the model, the versions, the reason and the flow
run's link. ``apply_notifications`` (run by ``python -m deployments.serve``, i.e. ``ratchet up``)
saves ``notify.webhook_url`` as the Webhook block ``notify.block`` (or uses an existing block of
that name) and creates the automations, replacing ones of the same name. They are not in
``prefect.yaml``: an automation's action names its block by id, known only once it exists.

- ``ratchet: data rejected``: ``ratchet.data.rejected``
- ``ratchet: drift detected``: ``ratchet.drift.detected``
- ``ratchet: challenger promoted`` / ``kept``: ``ratchet.model.promoted`` / ``ratchet.model.kept``
- ``ratchet: canary rolled back`` / ``inconclusive``: ``ratchet.model.rolled_back`` /
  ``ratchet.model.canary_inconclusive``
- ``ratchet: approval requested``: ``ratchet.model.approval_requested``
- ``ratchet: flow run failed``: ``prefect.flow-run.Failed`` / ``Crashed`` of any ratchet flow
"""

from __future__ import annotations

from ratchet.core import events as ev
from ratchet.core.config import RatchetConfig

FLOWS = ["ingest", "train", "evaluate", "promote", "rollback", "release", "canary", "monitor", "score", "demo"]

# the JSON each ratchet event posts: its payload carries the model, versions, reason and link
# (a key it lacks, e.g. the challenger of `ratchet rollback`'s event, is null: an undefined
# value fails the whole message)
MODEL_MESSAGE = """{
  "notification": "{{ event.event }}",
  "model": {{ (event.payload.model or event.resource['ratchet.model'] or '%(model)s')|tojson }},
  "action": {{ (event.payload.action or none)|tojson }},
  "champion": {{ (event.payload.champion or none)|tojson }},
  "challenger": {{ (event.payload.challenger or none)|tojson }},
  "reason": {{ (event.payload.reason or event.payload.kind or '')|tojson }},
  "flow_run_url": {{ (event.payload.flow_run_url or ((flow_run|ui_url) if flow_run else none))|tojson }},
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
  "flow_run_url": {{ ((flow_run|ui_url) if flow_run else none)|tojson }},
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
  "flow_run_url": {{ ((flow_run|ui_url) if flow_run else none)|tojson }},
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


def build_notifications(cfg: RatchetConfig, block_document_id) -> list:
    """The automations, each posting its JSON through the Webhook block ``block_document_id``."""
    from prefect.automations import Automation
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture

    return [
        Automation(
            name=name, description=f"post JSON to the webhook on {', '.join(events)}", enabled=True,
            trigger=EventTrigger(expect=set(events), match=match, match_related=related or {},
                                 posture=Posture.Reactive, threshold=1, within=0),
            actions=[CallWebhook(block_document_id=block_document_id, payload=template % {"model": cfg.model_name})],
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


def apply_notifications(cfg: RatchetConfig) -> list:
    """Create the notification automations (replacing ones of the same name); [] without a webhook."""
    from prefect.automations import Automation

    block = webhook_block(cfg)
    if block is None:
        return []
    created = []
    for automation in build_notifications(cfg, block._block_document_id):
        try:
            Automation.read(name=automation.name).delete()
        except ValueError:
            pass
        created.append(automation.create())
    return created
