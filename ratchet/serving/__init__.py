"""Online serving: champion/challenger routing, live profiling, Prometheus metrics.

``import ratchet.serving`` is cheap: the protocols (``model_api``, pandas) and
:func:`create_app` (FastAPI, prometheus-client) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.serving.app import create_app
    from ratchet.serving.model_api import ALIASES, LoadedModel, ModelProvider

__all__ = ["ALIASES", "LoadedModel", "ModelProvider", "create_app"]


def __getattr__(name: str) -> Any:
    # on first use: model_api imports pandas, and `ratchet status` reads traffic_split.py alone
    if name == "create_app":
        from ratchet.serving.app import create_app

        return create_app
    if name in ("ALIASES", "LoadedModel", "ModelProvider"):
        from ratchet.serving import model_api

        return getattr(model_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
