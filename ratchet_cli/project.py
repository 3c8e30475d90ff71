"""The project config ``ratchet init`` writes: ``<home>/ratchet.yaml``, next to the schema.

A short file for review, not a copy of the built-in config: the settings a project most
likely changes, at the values in force when it was written (the built-in defaults, or
the files ``--config`` / ``RATCHET_CONFIG`` / ``./ratchet.yaml`` named). Every other
setting keeps its built-in default and can be added by the same key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ratchet.core.config import BUILTIN_CONFIG, RatchetConfig

# (section, key, comment); section None: a top-level key
_CLASSIFIER_GATE = [
    ("gate", "metric", "accuracy, f1, roc_auc or log_loss"),
    ("gate", "alpha", "the paired test's significance level"),
    ("gate", "floor", "no model below this becomes champion, not even the first"),
]
_REGRESSION_GATE = [
    ("gate", "regression_metric", "mae or rmse (lower is better)"),
    ("gate", "alpha", "the paired test's significance level"),
    ("gate", "regression_floor", "minimum R² on the held-out rows"),
]
_SETTINGS = [
    (None, "model_name", "the MLflow registered model: one per project"),
    (None, "experiment", "the MLflow experiment of the training runs"),
    ("data", "drift_gate", "true: a batch that drifts from main is rejected, not only reported"),
    ("train", "max_epochs", None),
    ("train", "accelerator", "gpu (with devices: auto) on a GPU machine"),
    ("train", "window", "the batches to learn from: best (the candidate window that best predicts the newest batch), since_drift, last (window_batches) or all"),
    ("tune", "trials", "Optuna trials per training run"),
]
_SERVING = [("serving", "port", "ratchet serve")]


def _scalar(value: Any) -> str:
    return yaml.safe_dump([value], default_flow_style=True, allow_unicode=True).strip()[1:-1]


def starter_config(cfg: RatchetConfig, task: str | None = None) -> str:
    """The text of ``<home>/ratchet.yaml`` for ``cfg``; ``task`` (the schema's) picks the
    gate's metric: a regression target is judged on ``regression_metric``."""
    lines = [
        "# The project's ratchet config, written by `ratchet init` next to schema.yaml: review both.",
        "# Only the settings a project usually changes: any other keeps its built-in default and",
        "# can be added here by the same key. The built-in config, every setting with a comment:",
        f"#   {BUILTIN_CONFIG}",
        "# ratchet reads the first of: --config FILE, RATCHET_CONFIG, ./ratchet.yaml, this file,",
        "# each merged over the built-in defaults.",
    ]
    data = cfg.model_dump(mode="json")
    gate = _REGRESSION_GATE if task == "regression" else _CLASSIFIER_GATE
    section = ""
    for where, key, comment in [*_SETTINGS, *gate, *_SERVING]:
        if where != section:
            lines += ["", f"{where}:"] if where else [""]
            section = where
        value = data[where][key] if where else data[key]
        text = f"{'  ' if where else ''}{key}: {_scalar(value)}"
        lines.append(f"{text:<34} # {comment}" if comment else text)
    return "\n".join(lines) + "\n"


def write_starter_config(path: Path, cfg: RatchetConfig, task: str | None = None) -> bool:
    """Write ``path`` unless it exists; True when written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(starter_config(cfg, task))
    except FileExistsError:
        return False
    return True
