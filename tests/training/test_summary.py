"""The training summary's markdown: lineage, metrics, parameters, every trial, figures."""

from __future__ import annotations

from ratchet.training import summary
from ratchet.training.search import TrainedModel


def _trained(**update) -> TrainedModel:
    fields = dict(
        run_id="run-1", predictor=None, data_commit="abc123", batches=["b0", "b1"], window_batches=2,
        config_hash="cfg", study_name="ratchet-abc", best_trial=1,
        best_params={"learning_rate": 0.01, "hidden": 1},
        metrics={"test_accuracy": 0.9, "test_f1": 0.85, "best_val_loss": 0.3}, n_trials=3, n_pruned=1,
        n_finished=2,
        trials=[
            {"number": 0, "state": "fail", "value": None, "epochs": None, "resume_of": None,
             "params": {"learning_rate": 0.1}},
            {"number": 1, "state": "complete", "value": 0.3, "epochs": 4, "resume_of": 0,
             "params": {"learning_rate": 0.01, "hidden": 1}},
            {"number": 2, "state": "pruned", "value": None, "epochs": 1, "resume_of": None,
             "params": {"learning_rate": 0.5}},
        ],
        figures=["training_curve.png", "optuna_history.png"],
        figures_skipped={"optuna_importances.png": "1 complete trial(s); importances need 2 or more"},
        resumed=[0],
    )
    return TrainedModel(**(fields | update))


def test_the_summary_names_the_version_lineage_and_metrics():
    md = summary.render("demo-model", _trained(), "7")
    assert md.startswith("# Model version 7 (demo-model)\n")
    assert "| data commit | `abc123` |" in md and "| window | 2 batch(es) |" in md
    assert "| MLflow run | `run-1` |" in md
    assert "`ratchet-abc`, best trial 1; 2 finished, 1 pruned" in md
    assert "| test accuracy | 0.9000 |" in md and "| test F1 | 0.8500 |" in md
    assert "| best val loss | 0.3000 |" in md
    assert "| learning_rate | 0.01 |\n| hidden | 1 |" in md


def test_the_summary_lists_every_trial_the_resumed_ones_and_the_figures():
    md = summary.render("demo-model", _trained(), "7")
    assert "| 0 | fail |  |  |  | learning_rate=0.1000 |" in md
    assert "| 1 (best) | complete | 0.3000 | 4 | 0 | learning_rate=0.0100, hidden=1 |" in md
    assert "| 2 | pruned |" in md
    assert "Resumed trial(s) [0] from their checkpoints." in md
    assert "- `training_curve.png`\n- `optuna_history.png`" in md
    assert "- `optuna_importances.png` not drawn: 1 complete trial(s); importances need 2 or more" in md


def test_missing_metrics_read_nan_and_nothing_resumed_says_nothing():
    md = summary.render("demo-model", _trained(metrics={}, resumed=[], figures_skipped={}), "1")
    assert "| test accuracy | nan |" in md and "Resumed" not in md and "not drawn" not in md
