"""Imports kept from pulling in what ratchet never uses."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator

SKLEARN = ("sklearn", "sklearn.cluster", "sklearn.decomposition", "sklearn.metrics.pairwise")


@contextlib.contextmanager
def without_sklearn() -> Iterator[None]:
    """scikit-learn hidden from the imports made inside: whylogs imports it when it is
    installed (0.8 s of a 2-core ``ratchet ingest``), for its experimental embedding metrics
    alone, and falls back to stubs when the import fails. A scikit-learn imported already
    stays as it is, and one imported later is the real one."""
    hidden = [m for m in SKLEARN if m not in sys.modules]
    if "sklearn" not in hidden:
        yield
        return
    sys.modules.update(dict.fromkeys(hidden))  # None: `import sklearn...` raises ImportError
    try:
        yield
    finally:
        for m in hidden:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]


# What a warm process imports ahead, one list for both: the CLI's warm process
# (``ratchet_cli.warm_process``, which adds the command line itself) and the runner's forkserver
# (``deployments.warm``). Names, not imports: the core stays free of the layers above it.
PRELOAD = (
    "prefect", "pandas", "pyarrow.parquet", "ratchet.data.profiling", "ratchet.data.profile_drift", "flows.ingest",
    "flows.train", "flows.promote", "flows.release", "flows.canary", "flows.monitor", "flows.score", "flows.gc", "torch",
    "lightning", "mlflow.pyfunc", "optuna", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


def warm_preload(default: Iterable[str] = PRELOAD) -> list[str]:
    """The modules a warm process imports ahead (the CLI's warm process, the runner's
    forkserver): ``RATCHET_WARM_PRELOAD`` (comma-separated) when set, to trim the list (less
    memory, a faster start), else ``default``."""
    chosen = [m.strip() for m in os.environ.get("RATCHET_WARM_PRELOAD", "").split(",") if m.strip()]
    return chosen or list(default)
