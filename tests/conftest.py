"""Shared fixtures: a temporary home per test, the real configs plus the test override."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the built-in config (package data) plus the test override
CONFIG_FILES = [str(ROOT / "ratchet" / "configs" / "ratchet.yaml"), str(ROOT / "configs" / "test.yaml")]


def pytest_configure(config: pytest.Config) -> None:
    # Prefect reads its settings on import: keep its files out of the user's ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="ratchet-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a CLI command run by a test uses Prefect's temporary server, never leaves one running
    os.environ.setdefault("RATCHET_PREFECT_SERVER", "ephemeral")
    # the per-user registry of homes (ratchet_cli.homes): the suite's homes never join the user's
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="ratchet-state-")
    os.environ["RATCHET_CONFIG"] = os.pathsep.join(CONFIG_FILES)


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness: a real, temporary Prefect server, one for the whole session
    (tests/flows and tests/tasks use it automatically)."""
    from prefect.testing.utilities import prefect_test_harness

    # the first start migrates a fresh SQLite database: give it time on a slow machine
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("RATCHET_HOME", str(h))
    return h


@pytest.fixture
def ctx(home: Path):
    from ratchet.runtime.context import load_context

    return load_context(CONFIG_FILES, home=str(home))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory):
    """Small synthetic batches (clean, then drifted) written as CSV, plus held-out frames."""
    from ratchet.core.config import load_config
    from ratchet.demo.stream import make_demo_data

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    return make_demo_data(cfg.demo, tmp_path_factory.mktemp("incoming"))
