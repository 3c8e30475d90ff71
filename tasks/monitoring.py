"""Monitoring stage: production drift against the champion's training data."""

from __future__ import annotations

import time

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.monitoring.drift import production_drift
from ratchet.runtime.context import Context
from ratchet.runtime.stack import read_stack


@task(cache_policy=NO_CACHE, retries=1)
def measure_production_drift(ctx: Context, since: float | None = None, lookback_s: float | None = None) -> dict:
    """Live profiles written since ``since`` (or in the last ``lookback_s`` seconds)."""
    if since is None and lookback_s is not None:
        since = time.time() - lookback_s
    stack = read_stack(ctx.settings)
    result = production_drift(
        ctx.repo, ctx.registry, ctx.schema, ctx.cfg, ctx.settings.serving_dir, ctx.settings.root,
        since, service_url=stack["service_url"] if stack else None,
    )
    rows = "\n".join(
        f"| {k} | {v.get('algorithm')} | {v.get('p_value')} | {v.get('drifted')} |"
        for k, v in (result.get("features") or {}).items()
    )
    create_markdown_artifact(
        f"# Production drift of champion v{result.get('champion')}\n\n"
        f"detected: **{result.get('detected')}** {result.get('reason') or ''}\n\n"
        f"live accuracy: {result.get('live_accuracy')}\n\n"
        f"| feature | test | p-value | drifted |\n|---|---|---|---|\n{rows}\n",
        key="production-drift",
    )
    return result
