"""A training task that crashes is retried by Prefect, resumes from its checkpoint, registers once."""

from __future__ import annotations

import mlflow
import optuna
import torch

from ratchet.runtime.options import RunOptions
from tests.conftest import CONFIG_FILES
from tests.training.helpers import epochs_started, flow_runs_with, home_with_data, task_runs_of


def test_a_crashed_training_task_is_retried_resumes_and_registers_one_version(home, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.train import train_flow

    ctx = home_with_data(home, CONFIG_FILES, batches=2, rows=700)
    marker = tmp_path / "crash"
    crash = {"class_path": "tests.training.helpers.CrashOnce", "init_args": {"epoch": 2, "marker": str(marker)}}
    out = train_flow(
        trials=1,
        options=RunOptions(
            config_files=CONFIG_FILES, home=str(home),
            overrides={"train": {"callbacks": [crash], "early_stopping_patience": None}},
        ),
    )
    max_epochs = ctx.cfg.train.max_epochs  # 4 in the test config

    # the first attempt crashed as epoch 2 began (a real exception inside Lightning's
    # loop); the retry started at epoch 2: no epoch was trained twice
    attempts = epochs_started(marker)
    assert [e for _, e in attempts] == [0, 1, 2, *range(2, max_epochs)]

    # Prefect ran the tune task twice, in one flow run
    (run,) = flow_runs_with(home, "train")
    tune_runs = [t for t in task_runs_of(run.id) if t.name.startswith("tune_model")]
    assert len(tune_runs) == 1 and tune_runs[0].run_count == 2 and tune_runs[0].state.is_completed()

    # the study continued: trial 0 failed, trial 1 resumed it from its checkpoint
    study = optuna.load_study(study_name=out.study, storage=ctx.settings.optuna_url)
    assert [(t.number, t.state.name, t.user_attrs.get("resume_of")) for t in study.trials] == [
        (0, "FAIL", None), (1, "COMPLETE", 0)
    ]
    assert study.trials[1].params == study.trials[0].params
    metrics = study.trials[1].user_attrs["metrics"]
    assert metrics["start_epoch"] == 2 and metrics["epochs"] == max_epochs
    last = ctx.settings.checkpoints_dir / out.study / "0" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == max_epochs - 1
    assert [r["epoch"] for r in study.trials[1].user_attrs["history"]] == list(range(max_epochs))

    # exactly one model version, tagged with its lineage
    versions = ctx.registry.client.search_model_versions(f"name = '{ctx.cfg.model_name}'")
    assert [str(v.version) for v in versions] == ["1"] and out.model_version == "1"
    tags = versions[0].tags
    assert tags["data_commit"] == out.data_commit and tags["optuna_trial"] == "1"
    assert tags["code_version"] and tags["config_hash"] and tags["run_id"] == out.run_id

    # the parent run holds the study's report; importances need two complete trials
    mlflow.set_tracking_uri(ctx.settings.tracking_uri)
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(out.run_id)}
    assert {"optuna_history.png", "optuna_trials.json", "optuna_figures_skipped.json", "training_curve.png"} <= files
    assert "optuna_importances.png" not in files

    # and the Prefect summary names them, with the table of trials
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    md = artifact.data
    assert "optuna_history.png" in md and "optuna_importances.png` not drawn" in md
    assert "| 0 | fail |" in md and "| 1 (best) | complete |" in md and "Resumed trial(s) [0]" in md
