"""Flow tests run under Prefect's test harness: a real, temporary Prefect server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(prefect_server):
    yield


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from ratchet_cli.main import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
