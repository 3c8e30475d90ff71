"""The names of ratchet's events, and the resources they are about: one place for both, so a
search for an event finds whoever emits it as well as the automations that react to it.

The core builds events as data (the lakeFS relay, the notification payloads); emitting them
to Prefect is the job of ``ratchet_prefect.events``."""

from __future__ import annotations

from typing import Any

DATA_PUBLISHED = "ratchet.data.published"  # a batch reached main: retrain (debounced)
DATA_REJECTED = "ratchet.data.rejected"  # a batch failed its checks; main unchanged
DATA_DUPLICATE = "ratchet.data.duplicate"  # a batch main already holds
DRIFT_DETECTED = "ratchet.drift.detected"  # live or batch evidence of drift: retrain since the onset
MODEL_REGISTERED = "ratchet.model.registered"  # a challenger: the release gates it
MODEL_PROMOTED = "ratchet.model.promoted"
MODEL_KEPT = "ratchet.model.kept"
MODEL_ROLLED_BACK = "ratchet.model.rolled_back"
MODEL_CANARY_INCONCLUSIVE = "ratchet.model.canary_inconclusive"
MODEL_APPROVAL_REQUESTED = "ratchet.model.approval_requested"

DATA_EVENTS = {"published": DATA_PUBLISHED, "rejected": DATA_REJECTED, "duplicate": DATA_DUPLICATE}
ANY_DATA = "ratchet.data.*"  # the resource pattern automations match data events by
ANY_MODEL = "ratchet.model.*"


def data_resource(repository: str, branch: str | None = None, commit: str | None = None) -> dict[str, str]:
    """The resource of a data event: the repository, and the branch and commit it names."""
    out = {"prefect.resource.id": f"ratchet.data.{repository}", "ratchet.repository": repository}
    return out | {k: v for k, v in (("ratchet.branch", branch), ("ratchet.commit", commit)) if v}


def model_resource(model: str) -> dict[str, Any]:
    """The resource of a model event: the registered model's name."""
    return {"prefect.resource.id": f"ratchet.model.{model}", "ratchet.model": model}
