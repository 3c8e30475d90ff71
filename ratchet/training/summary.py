"""The training summary: a trained model's lineage, search and figures as markdown.

``render`` is what the training task publishes as the flow run's artifact
(``training-summary``); it is a plain string, built here without Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ratchet.training.search import TrainedModel


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _metric_rows(m: dict[str, float]) -> str:
    """The test metrics of the task: RMSE, MAE, R² for regression; accuracy, F1 otherwise."""
    nan = float("nan")
    if "test_rmse" in m:
        rows = [("test RMSE", "test_rmse"), ("test MAE", "test_mae"), ("test R²", "test_r2")]
    else:
        rows = [("test accuracy", "test_accuracy"), ("test F1", "test_f1")]
    return "\n".join(f"| {label} | {m.get(key, nan):.4f} |" for label, key in rows)


def headline(metrics: dict[str, float]) -> str:
    """One line for logs: test RMSE and R² for regression, test accuracy otherwise."""
    if "test_rmse" in metrics:
        return f"test RMSE {metrics['test_rmse']:.4f}, R² {metrics.get('test_r2', float('nan')):.4f}"
    return f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}"


def render(model_name: str, trained: TrainedModel, version: str) -> str:
    """Markdown for model ``version`` of ``model_name``: data commit and window, MLflow
    run, Optuna study, test metrics, best parameters, every trial, figures."""
    m = trained.metrics
    params = "\n".join(f"| {k} | {v} |" for k, v in trained.best_params.items())
    trials = "\n".join(
        f"| {t['number']}{' (best)' if t['number'] == trained.best_trial else ''} | {t['state']} | {_fmt(t['value'])} "
        f"| {_fmt(t['epochs'])} | {_fmt(t['resume_of'])} | {', '.join(f'{k}={_fmt(v)}' for k, v in t['params'].items())} |"
        for t in trained.trials
    )
    figures = "\n".join(f"- `{name}`" for name in trained.figures)
    figures += "".join(f"\n- `{name}` not drawn: {why}" for name, why in trained.figures_skipped.items())
    resumed = f" Resumed trial(s) {trained.resumed} from their checkpoints." if trained.resumed else ""
    return f"""# Model version {version} ({model_name})

| | |
|---|---|
| data commit | `{trained.data_commit}` |
| window | {trained.window_batches} batch(es) |
| MLflow run | `{trained.run_id}` |
| Optuna study | `{trained.study_name}`, best trial {trained.best_trial}; {trained.n_finished} finished, {trained.n_pruned} pruned |
{_metric_rows(m)}
| best val loss | {m.get('best_val_loss', float('nan')):.4f} |

## Best parameters
| parameter | value |
|---|---|
{params}

## Trials
| trial | state | val loss | epochs | resumes | parameters |
|---|---|---|---|---|---|
{trials}
{resumed}
## Figures (artifacts of the MLflow run)
{figures}
"""
