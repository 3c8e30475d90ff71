"""The soak benchmark's short version: about five minutes of the whole stack in compressed
time (batches, drift episodes, bad batches, traffic with feedback, GC, retrains), then its
verdicts: memory and descriptors flat, disk with the data kept, 0 non-2xx, one champion at
every ledger entry, no batch trained twice. Slow: `pytest -m slow tests/flows/test_soak.py`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.flows.stack import ROOT

pytestmark = pytest.mark.slow


def test_five_minutes_of_the_loop_keep_every_verdict(tmp_path):
    out = tmp_path / "soak"
    r = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--minutes", "5", "--batch-every", "10", "--sample-every", "15",
         "--gc-every", "5", "--episode", "12", "--bad-every", "7", "--min-retrains", "3", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    report = json.loads((out / "soak.json").read_text())
    failed = {k: v for k, v in report["verdicts"].items() if not v["ok"]}
    assert r.returncode == 0 and not failed, (failed, r.stdout[-3000:], r.stderr[-3000:])
    assert report["batches"] >= 25 and (out / "soak.png").stat().st_size > 0
    assert sum(s["requests"] for s in report["samples"]) > 1000
