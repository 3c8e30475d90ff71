"""Setup stage: the home folder, the data repository, the schema."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from ratchet.runtime.context import Context
from ratchet.runtime.home import init_home as _init_home


@task(cache_policy=NO_CACHE)
def init_home(ctx: Context, schema_from: str | None = None, target: str | None = None, force: bool = False) -> dict:
    return _init_home(ctx, schema_from, target, force)
