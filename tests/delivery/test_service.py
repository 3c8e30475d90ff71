"""Where the canary finds the service and its admin token: each link of the chains in order,
the later ones looked up only when the earlier ones gave nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.core.config import load_config
from ratchet.delivery.service import resolve_admin_token, resolve_service_url
from tests.conftest import CONFIG_FILES


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.delenv("RATCHET_SERVICE_URL", raising=False)
    monkeypatch.delenv("RATCHET_ADMIN_TOKEN", raising=False)
    return load_config([Path(f) for f in CONFIG_FILES])


def _never():
    raise AssertionError("looked up although an earlier link answered")


def test_service_url_chain(cfg, monkeypatch):
    fallback = f"http://{cfg.serving.host}:{cfg.serving.port}"
    assert resolve_service_url(cfg, None, lambda: None) == fallback
    assert resolve_service_url(cfg, None, lambda: {"service_url": "http://stack:1"}) == "http://stack:1"
    configured = cfg.model_copy(update={"canary": cfg.canary.model_copy(update={"service_url": "http://cfg:2"})})
    assert resolve_service_url(configured, None, _never) == "http://cfg:2"
    monkeypatch.setenv("RATCHET_SERVICE_URL", "http://env:3")
    assert resolve_service_url(configured, None, _never) == "http://env:3"
    assert resolve_service_url(configured, "http://arg:4", _never) == "http://arg:4"


def test_admin_token_chain(cfg, monkeypatch):
    assert resolve_admin_token(lambda: None, lambda: None) is None
    assert resolve_admin_token(lambda: None, lambda: "generated") == "generated"
    assert resolve_admin_token(lambda: "block", _never) == "block"
    monkeypatch.setenv("RATCHET_ADMIN_TOKEN", "env")
    assert resolve_admin_token(_never, _never) == "env"
