"""A fresh home's SQLite tracking database, created by several processes at once (the
service's reload and an ingest's training right after `ratchet up`): one creates it under
the lock, the others wait, and every one of them can use it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CODE = """
import sys
from ratchet.core.settings import Settings
from ratchet.training.registry import Registry
r = Registry(Settings(home=sys.argv[1]), "m", "e")
r.activate()
print(len(r.client.search_registered_models()))
"""


def test_processes_creating_the_tracking_database_at_once_all_use_it(tmp_path):
    home = tmp_path / "home"
    procs = [subprocess.Popen([sys.executable, "-c", CODE, str(home)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(code == 0 and out.strip() == "0" for code, out, _ in results), [r[2][-1500:] for r in results]
    assert (home / "mlflow.db.ready").exists()
