"""Fixtures: a served app over real tiny sklearn models (see helpers.py)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from ratchet.serving import create_app

from .helpers import BrokenModel, MemoryProvider, SkModel, WiderModel, make_frame, rows_of, serving_config


@dataclass
class Env:
    provider: MemoryProvider
    app: object
    client: TestClient
    state_dir: object

    @property
    def rt(self):
        return self.app.state.ratchet


@pytest.fixture(scope="session")
def models() -> dict[str, SkModel]:
    return {
        "1": SkModel("1", seed=1),
        "2": SkModel("2", seed=2, C=0.05),
        "3": BrokenModel("3", seed=3),  # predict_proba raises
        "4": WiderModel("4", seed=4),  # needs an extra column x3
        "5": RuntimeError("registry unreachable"),  # provider.load raises
    }


@pytest.fixture
def serve(tmp_path, models):
    """serve(aliases=..., cfg=..., **create_app kwargs) -> Env with a started TestClient."""

    @contextmanager
    def _serve(aliases=None, cfg=None, **kw):
        provider = MemoryProvider(models, aliases if aliases is not None else {"champion": "1"})
        # the shipped config, with limits small enough to hit and a profiler that only flushes on demand
        cfg = cfg or serving_config(
            max_rows=50,
            max_body_bytes=20_000,
            profile_batch_rows=100_000,
            profile_flush_s=60.0,
            profile_window_s=3600.0,
        )
        kw.setdefault("watch_interval_s", None)
        app = create_app(provider, cfg, tmp_path, **kw)
        with TestClient(app) as client:
            yield Env(provider, app, client, tmp_path)

    return _serve


@pytest.fixture
def good_rows() -> list[dict]:
    return rows_of(make_frame(5, seed=99))
