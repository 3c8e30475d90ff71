"""Monitoring stage: production drift against the champion's training data."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.context import Context
from ratchet.monitoring import production_drift


@task(cache_policy=NO_CACHE)
def measure_production_drift(ctx: Context, since: float | None = None) -> dict:
    result = production_drift(
        ctx.repo, ctx.registry, ctx.schema, ctx.cfg, ctx.settings.serving_dir,
        ctx.settings.root / "drift.json", since,
    )
    rows = "\n".join(
        f"| {k} | {v.get('algorithm')} | {v.get('p_value')} | {v.get('drifted')} |"
        for k, v in (result.get("features") or {}).items()
    )
    create_markdown_artifact(
        f"# Production drift of champion v{result.get('champion')}\n\ndetected: **{result.get('detected')}**\n\n"
        f"| feature | test | p-value | drifted |\n|---|---|---|---|\n{rows}\n",
        key="production-drift",
    )
    return result
