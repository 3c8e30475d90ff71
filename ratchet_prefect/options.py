"""One default for every task, and named retry policies.

No task caches: each reads or writes stores that change under it (the data repository, the
registry, the ledger), so a cached result would be a stale one; ``task`` below sets
``cache_policy=NO_CACHE`` once instead of in every decorator. A retry policy is named by what
it rides out, so a task's decorator says why it retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE

# a store busy for a moment (SQLite locked, MLflow's registry mid-write): try again soon
STORE_BUSY: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 1}
# reading a data window or a model (files, the registry): a little longer between tries
STORE_READ: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 2}
# a call to the inference service over HTTP, which may be restarting
SERVICE_CALL: dict[str, Any] = {"retries": 3, "retry_delay_seconds": 1}
# the registry during a registration, which other runs may touch at once
REGISTRY_WRITE: dict[str, Any] = {"retries": 3, "retry_delay_seconds": 2}
# one more try of work that is safe to repeat (idempotent reads and measurements)
ONCE_MORE: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 2}
# a webhook receiver that is down for a while: back off (2, 10, 30 s)
WEBHOOK: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [2, 10, 30]}
# housekeeping (gc) that meets a busy store: wait longer, it is never urgent
HOUSEKEEPING: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 5}
HOUR_S = 3600  # the timeout of work that grows with the data (a 10M-row audit, a training)


def task(fn: Callable | None = None, /, **options: Any) -> Any:
    """Prefect's ``@task`` with ratchet's defaults (``cache_policy=NO_CACHE``); ``options``
    (a retry policy above, a timeout) are Prefect's."""
    options = {"cache_policy": NO_CACHE, **options}
    return prefect_task(fn, **options) if fn is not None else prefect_task(**options)
