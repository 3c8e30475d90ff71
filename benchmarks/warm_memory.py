"""What the warm process (``ratchet_cli/warm.py``) holds, module by module of its preload: the
private (anonymous) and file-backed resident memory each import adds, and its import time,
in a fresh interpreter that imports ``PRELOAD`` in the warm process's order.

    python benchmarks/warm_memory.py

Anonymous memory is what the process costs the machine (file-backed pages of shared libraries
are shared with every other process of the same venv and dropped under pressure). Which
commands need what: ``ingest`` imports Prefect, pandas, whylogs (``ratchet.data.profiling``)
and its flow; once a champion exists it also scores each labelled batch with it
(``ratchet.monitoring.batch_scores``), which loads the predictor: torch, Lightning (imported by
``ratchet.training.model``) and MLflow's stores. ``train``, ``evaluate``, ``promote`` and
``score`` import all of it. Import times on a shared machine are noisy: the load average is
printed with the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
from ratchet_cli.warm_process import COMMAND_PRELOAD as PRELOAD

def rss():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("RssAnon", "RssFile")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out["RssAnon"], out["RssFile"]

rows, (anon, file) = [], rss()
rows.append(["(interpreter, ratchet_cli.warm_process)", anon, file, 0.0])
for name in PRELOAD:
    t0 = time.perf_counter()
    try:
        __import__(name)
    except ImportError:
        continue
    seconds = time.perf_counter() - t0
    a, f = rss()
    rows.append([name, a - anon, f - file, seconds])
    anon, file = a, f
print(json.dumps(rows))
"""


def main() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'module':48s} {'anon MB':>8s} {'file MB':>8s} {'import s':>9s}")
    for name, anon, file, seconds in rows:
        print(f"{name:48s} {anon:8.0f} {file:8.0f} {seconds:9.2f}")
    print(f"{'total':48s} {sum(r[1] for r in rows):8.0f} {sum(r[2] for r in rows):8.0f} {sum(r[3] for r in rows):9.2f}")


if __name__ == "__main__":
    main()
