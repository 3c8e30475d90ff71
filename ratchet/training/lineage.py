"""Where a model version came from: data commit and window, code, config, run and trial."""

from __future__ import annotations

from typing import Any

from ratchet.data.repository.base import DataRepository
from ratchet.training.registry import Registry


def lineage(repo: DataRepository, registry: Registry, version: str) -> dict[str, Any]:
    """Everything recorded about ``version``; a ``LookupError`` naming it when it does not exist."""
    try:
        info = registry.version_info(version)
    except Exception as e:  # MLflow's RestException for an unknown version
        raise LookupError(f"no version {version} of {registry.model_name}: {e}") from e
    made = registry.lineage(version)
    commit = repo.get_commit(made.data_commit)
    run = registry.client.get_run(info["run_id"])
    return {
        "model": registry.model_name,
        "version": version,
        "aliases": info["aliases"],
        "data_commit": made.data_commit,
        "data_commit_message": commit.message,
        # the output keeps the registry's strings, as `ratchet lineage --json` always printed them
        "data_window_batches": _text(made.window_batches),
        "data_window_rule": made.window_rule,
        # rule "best": every candidate window with its proxy loss on the newest batch, and the rule that chose
        "data_window_candidates": [dict(c) for c in made.window_candidates],
        "data_window_choice": made.window_choice,
        "feature_importance": dict(made.feature_importance),
        # the base rate it was trained at, and the labelled batch's shares its probabilities are re-weighted to
        # since a prior shift (ratchet.core.prior_shift; {}: none)
        "class_counts": dict(made.class_counts),
        "prior_shares": _prior(registry.marks(version)),
        "code_version": made.code_version,
        "config_hash": made.config_hash,
        "mlflow_run": info["run_id"],
        "optuna_study": made.optuna_study,
        "optuna_trial": _text(made.optuna_trial),
        "data_profile": profile_summary(repo, made.data_commit, made.window_batches),
        "params": run.data.params,
        "metrics": run.data.metrics,
    }


def champion_importance(registry: Registry) -> dict[str, float] | None:
    """The champion's permutation importance per feature, as measured at its training; None
    without a champion or for a version trained before it was recorded."""
    champion = registry.alias("champion")
    return (dict(registry.lineage(champion).feature_importance) or None) if champion else None


def _prior(marks) -> dict[str, float]:
    from ratchet.core.prior_shift import loads

    return loads(marks.prior_shares)


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def profile_summary(repo: DataRepository, commit: str, window_batches: int | None) -> dict[str, dict[str, float]]:
    """Per column of the training window's whylogs profile: rows, nulls, mean, min, max."""
    from ratchet.data.ingest import reference_profile

    view = reference_profile(repo, commit, window_batches)
    if view is None:
        return {}
    df = view.to_pandas()
    keep = {"counts/n": "rows", "counts/null": "nulls", "distribution/mean": "mean",
            "distribution/min": "min", "distribution/max": "max"}
    cols = [c for c in keep if c in df.columns]
    return {
        name: {keep[c]: (None if row[c] != row[c] else float(row[c])) for c in cols}
        for name, row in df[cols].iterrows()
    }
