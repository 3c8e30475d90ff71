"""A process that keeps writing to a home until a stop file appears, through the core library:
ingest-like branches (write, commit, merge into main; every other branch left behind like a
rejected batch), tags, promotions and rollbacks between versions 1 and 2 (alias moves in the
registry, then the ledger entry), and canary-like traffic entries in the ledger.

``python -m tests.runtime.load_writer HOME STOP OUT``: writes its counts to OUT (JSON) after each
round, so a test knows it is under way."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ratchet.core.files import atomic_write_json
from ratchet.core.settings import Settings
from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.promotion.ledger import Entry, Ledger
from ratchet.promotion.promote import promote
from ratchet.training.registry import Registry

MODEL, EXPERIMENT = "ratchet-classifier", "ratchet"


def main(home: str, stop: str, out: str) -> None:
    settings = Settings(home=Path(home))
    repo = EmbeddedRepository.open_or_init(settings.data_dir / "ratchet")
    registry, ledger = Registry(settings, MODEL, EXPERIMENT), Ledger(settings.ledger)
    counts = {"rounds": 0, "commits": 0, "promotions": 0, "ledger": 0}
    rng = np.random.default_rng(7)
    k = 0
    while not Path(stop).exists():
        k += 1
        branch = f"ingest-load-{k}"
        repo.create_branch(branch, "main")
        repo.write_dataframe(branch, f"batches/load-{k}.parquet", pd.DataFrame({"x": rng.normal(size=200)}))
        head = repo.commit(branch, f"load batch {k}", {"batch": str(k)})
        counts["commits"] += 1
        if k % 2:
            repo.merge(branch, "main", metadata={"batch": str(k)})
            repo.delete_branch(branch)
        if k % 5 == 0:
            repo.create_tag(f"load-{k}", "main")
        target = "2" if registry.alias("champion") == "1" else "1"
        promote(registry, ledger, target, trigger="load", data_commit=head)
        counts["promotions"] += 1
        ledger.append(Entry(action="traffic", trigger="load", model=MODEL, from_version=target,
                            to_version=target, traffic=0.25, evidence={"round": k}))
        counts["ledger"] += 2
        counts["rounds"] = k
        atomic_write_json(out, counts)
        time.sleep(0.05)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(*sys.argv[1:4])
