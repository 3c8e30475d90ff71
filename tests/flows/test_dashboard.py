"""The Prefect UI on the stack, in a real browser (issue 25): after `ratchet up` the home's
server serves the dashboard at the URL `ratchet up` prints, headless Chromium (Debian's
``chromium`` package, driven by Playwright with ``executable_path``) finds ratchet's
deployments on its deployments page, and a release paused for approval shows, behind the
flow run's Resume button, the approval form with the gate's evidence.

Slow (about five minutes on two busy cores): `pytest -m slow tests/flows/test_dashboard.py`. Without Chromium
or Playwright it fails saying what to install: CI does not install them, so it is slow-marked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from deployments import build_deployments
from ratchet.core.config import load_config
from tests.conftest import CONFIG_FILES
from tests.flows.stack import ROOT, Stack
from tests.flows.test_approval_stack import NEW_CHALLENGER, _models

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed: `apt-get install chromium` (Debian's package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is needed: `pip install playwright` (it drives the system's Chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = b.new_page()
        page.set_default_timeout(60_000)  # a page's first render on a busy two-core machine
        yield page
        b.close()


def test_the_stack_serves_the_dashboard_with_its_deployments_and_the_approval_form(tmp_path, demo_data, browser):
    stack = Stack(tmp_path / "home")
    champion, rule = _models(stack.home, demo_data)
    project = tmp_path / "ratchet.yaml"
    project.write_text(yaml.safe_dump({"release": {"approval": "required", "approval_timeout_s": 600,
                                                   "approval_poll_s": 1}, "canary": {"on_release": "never"}}))
    stack.env["RATCHET_CONFIG"] = os.pathsep.join([*CONFIG_FILES, str(project)])
    up = stack.ratchet("up", timeout=300)
    try:
        dashboard, api = up["dashboard_url"], up["prefect_api_url"]
        assert dashboard == api.removesuffix("api"), up
        home = httpx.get(dashboard, timeout=30)
        assert home.status_code == 200 and "text/html" in home.headers["content-type"], home.text[:300]
        # the dashboard's own settings name the API on the port it got (else: "Can't connect to Server API")
        assert httpx.get(f"{dashboard}ui-settings", timeout=30).json()["api_url"] == api

        # `up` returns once the runner has registered its first deployments; the rest follow
        expected = len(build_deployments(load_config([Path(f) for f in stack.env["RATCHET_CONFIG"].split(os.pathsep)])))
        deadline = time.monotonic() + 120
        while (count := httpx.post(f"{api}/deployments/count", json={}, timeout=30).json()) < expected:
            assert time.monotonic() < deadline, f"{count} of {expected} deployments registered"
            time.sleep(1)

        page = browser
        page.goto(f"{dashboard}deployments")
        # the rows come first, each flow's name a moment later (a request per flow)
        names = ["train", "on-data", "release", "on-challenger", "ingest", "manual"]
        page.wait_for_function("names => names.every(n => document.body.innerText.includes(n))", arg=names)
        listed = page.inner_text("body")
        assert f"{expected} Deployments" in listed and "Can't connect" not in listed, listed[:3000]

        # a challenger: the release automation starts a release, which pauses for approval
        r = subprocess.run([sys.executable, "-c", NEW_CHALLENGER, rule], env={**stack.env, "PREFECT_API_URL": api},
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        version = r.stdout.strip().splitlines()[-1]
        pending = stack.wait(f"v{version} waiting for approval", lambda: (
            p if (p := stack.ratchet("status")["pending_approval"]) and p["version"] == version else None),
            timeout=600, every=1.0)
        assert pending["flow_run_url"].startswith(dashboard), pending  # a link into this dashboard

        page.goto(pending["flow_run_url"])
        page.get_by_role("button", name="Resume").click()
        form = page.get_by_role("dialog")
        form.get_by_text(f"approval requested: {stack.ratchet('status')['model']} v{version}").wait_for()
        shown = form.inner_text()
        assert "the gate" in shown and "gate decision" in shown and "p_value" in shown, shown
        for field in ("approve", "comment", "who"):
            assert field in shown.lower(), shown
    finally:
        stack.ratchet("down", timeout=120)
