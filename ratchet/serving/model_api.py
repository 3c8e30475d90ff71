"""The two protocols the server codes against.

The MLflow side (written elsewhere) implements :class:`ModelProvider`; tests use an
in-memory one. Models only ever come from the provider, never from a request.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ratchet.core.schema import Schema

ALIASES = ("champion", "challenger")


@runtime_checkable
class LoadedModel(Protocol):
    version: str  # registry version, e.g. "3"
    classes: list  # class labels, index-aligned with predict_proba columns (empty for regression)
    schema: Schema  # the input columns it expects
    # a model with ``task == "regression"`` is served by ``predict(df)``: (n,) numbers, preprocessing
    # inside (``ratchet.training.model.fit.Predictor``); any other by ``predict_proba``

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:  # (n, k); preprocessing inside
        ...


@runtime_checkable
class ModelProvider(Protocol):
    def load(self, alias: str) -> LoadedModel | None:  # None when the alias is unset
        ...

    def versions(self) -> dict[str, str | None]:  # alias -> registered version (cheap)
        ...
