"""A new challenger: the gate first, then the rollout.

The rollout is, for now, the gated promotion itself (``promote_flow``); the canary
(``flows/canary.py``) is to take its place here once it runs against the stack's service.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.promote import promote_flow


@flow(name="release", log_prints=True)
def release_flow(
    trigger: str = "challenger registered",
    config_files: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    return promote_flow(trigger=trigger, config_files=config_files, overrides=overrides, home=home)
