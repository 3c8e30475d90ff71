"""Monitoring stage: production drift against the champion's training data."""

from __future__ import annotations

import time

from prefect.artifacts import create_markdown_artifact

from ratchet.monitoring.drift import drift_markdown, production_drift
from ratchet.runtime.context import Context
from ratchet.runtime.stack import read_stack
from ratchet_prefect.options import ONCE_MORE, task


@task(**ONCE_MORE)
def measure_production_drift(ctx: Context, since: float | None = None, lookback_s: float | None = None) -> dict:
    """Live profiles written since ``since`` (or in the last ``lookback_s`` seconds)."""
    stack = read_stack(ctx.settings)
    result = production_drift(
        ctx.repo, ctx.registry, ctx.schema, ctx.cfg, ctx.settings.serving_dir, ctx.settings.root,
        since if since is not None or lookback_s is None else time.time() - lookback_s,
        service_url=stack["service_url"] if stack else None,
    )
    create_markdown_artifact(drift_markdown(result), key="production-drift")
    return result
