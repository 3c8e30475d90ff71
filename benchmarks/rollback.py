"""How long an emergency rollback takes, end to end: `ratchet rollback --json` as a
fresh process (start, imports, alias moves, ledger), against the core call alone.

    python benchmarks/rollback.py [--repeats 5]

Target (issue: promotion): under 5 s end to end, with no Prefect server running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(home: Path) -> None:
    import mlflow

    from ratchet.core.schema import dump_schema
    from ratchet.data import ingest
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch, write_batch
    from ratchet.promotion import promote as promotion
    from ratchet.runtime.context import load_context
    from ratchet.training.model.fit import fit
    from ratchet.training.search import TrainedModel, register_trained
    from ratchet.training.window import training_data

    ctx = load_context([str(ROOT / "ratchet/configs/ratchet.yaml"), str(ROOT / "configs/test.yaml")], home=str(home))
    df = generate_batch(0, 1500, seed=1)
    dump_schema(infer_schema(df, DEMO_TARGET), ctx.settings.schema_path)
    path = write_batch(df, home / "b0.csv")
    audited = ingest.audit_batch(path, ctx.schema)
    branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
    ingest.commit_batch(ctx.repo, branch, audited)
    ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)
    data = training_data(ctx.repo, "main", ctx.cfg, schema=ctx.schema)
    for i in range(2):
        result = fit(data.train, data.val, ctx.schema, ctx.cfg.train, progress=False)
        ctx.registry.activate()
        with mlflow.start_run() as run:
            pass
        trained = TrainedModel(
            run_id=run.info.run_id, predictor=result.predictor, data_commit=data.data_commit,
            batches=data.batches, window_batches=1, config_hash=ctx.cfg.digest(), study_name="bench",
            best_trial=0, best_params={}, metrics={},
        )
        version = register_trained(trained, ctx.registry, data.train[ctx.schema.feature_names])
        promotion.promote(ctx.registry, ctx.ledger, version, trigger=f"bench {i}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ratchet-rollback-"))
    prepare(home)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["RATCHET_HOME"] = str(home)
    env["RATCHET_CONFIG"] = os.pathsep.join([str(ROOT / "ratchet/configs/ratchet.yaml"), str(ROOT / "configs/test.yaml")])
    cli = str(Path(sys.executable).parent / "ratchet")
    wall, core = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = subprocess.run([cli, "rollback", "--json"], env=env, capture_output=True, text=True, check=True)
        wall.append(time.perf_counter() - t0)
        core.append(json.loads(out.stdout)["seconds"])
    print(f"ratchet rollback, end to end (fresh process): median {statistics.median(wall):.2f} s, "
          f"max {max(wall):.2f} s over {args.repeats}")
    print(f"  of which the alias moves and the ledger:   median {statistics.median(core):.2f} s")
    print(f"  target < 5 s: {'met' if max(wall) < 5 else 'NOT met'} (ratio max/target {max(wall) / 5:.2f})")


if __name__ == "__main__":
    main()
