"""One worker of a shared Optuna study, run in its own process by test_study_workers.

Waits for ``folder/go`` so that the workers start their trials together, runs
``tune`` on the shared study and writes ``folder/report-<index>.json``: its
pid, the trials it ran and the best trial it returns.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def run_worker(storage: str, study: str, target: int, folder: str, index: int) -> None:
    import mlflow

    from ratchet.core.config import load_config
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.training.model.tune import tune
    from ratchet.training.window import split_frame
    from tests.conftest import CONFIG_FILES

    folder_ = Path(folder)
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 1500, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, _ = split_frame(df, 0.15, 0.2, seed=1)
    # MLflow's file store: no database migration to wait for in a short test. Its own
    # experiment: mlflow.set_experiment in the parent exports MLFLOW_EXPERIMENT_ID.
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.set_tracking_uri((folder_ / f"mlruns-{index}").as_uri())
    mlflow.set_experiment(f"study-worker-{index}")
    (folder_ / f"ready-{index}").touch()
    deadline = time.monotonic() + 300
    while not (folder_ / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go signal")
        time.sleep(0.02)
    t0 = time.monotonic()
    result = tune(
        train, val, schema, cfg, storage=storage, study_name=study, trials=target, progress=False,
        checkpoint_root=folder_ / "checkpoints",
    )
    report = {"pid": os.getpid(), "ran": result.ran, "seconds": time.monotonic() - t0,
              "best_trial": result.best_trial, "finished": result.n_finished}
    (folder_ / f"report-{index}.json").write_text(json.dumps(report))
