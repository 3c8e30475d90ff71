"""Online serving: champion/challenger routing, live profiling, Prometheus metrics.

``import ratchet.serving`` is cheap: it exposes the protocols; :func:`create_app`
(FastAPI, prometheus-client) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.serving.model_api import ALIASES, LoadedModel, ModelProvider

if TYPE_CHECKING:
    from ratchet.serving.app import create_app

__all__ = ["ALIASES", "LoadedModel", "ModelProvider", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ratchet.serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
