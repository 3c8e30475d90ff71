"""Setup stage: the home folder, the data repository, the schema."""

from __future__ import annotations

from ratchet.runtime.context import Context
from ratchet.runtime.home import init_home as _init_home
from ratchet_prefect.options import task


@task
def init_home(ctx: Context, schema_from: str | None = None, target: str | None = None, force: bool = False) -> dict:
    return _init_home(ctx, schema_from, target, force)
