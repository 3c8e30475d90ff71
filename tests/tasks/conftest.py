"""Task tests run under Prefect's test harness, the same server as the flow tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(prefect_server):
    yield
