"""The demo's report: ``report.json`` for machines, ``report.md`` and a plot for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratchet.config import Schema
from ratchet.model.preprocess import encode_target
from ratchet.model.train import Predictor


def accuracy(predictor: Predictor, frame: pd.DataFrame, schema: Schema) -> float:
    y = encode_target(frame[schema.target.name], schema.target.classes)
    return float(np.mean(predictor.predict_proba(frame).argmax(axis=1) == y))


def plot_accuracy(curves: dict[str, list[tuple[int, float]]], drift_at: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for version, points in curves.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=f"model v{version}")
    ax.axvline(drift_at - 0.5, color="grey", linestyle="--", label="concept drift")
    ax.set_xlabel("batch")
    ax.set_ylabel("accuracy on held-out rows")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


def write_report(run_dir: Path, report: dict[str, Any], curves: dict[str, list[tuple[int, float]]]) -> dict[str, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_accuracy(curves, report["drift_onset_batch"], run_dir / "accuracy.png")
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    ledger_rows = "\n".join(
        f"| {e['id']} | {e['action']} | {e['trigger']} | {e['from_version'] or '-'} | {e['to_version'] or '-'} "
        f"| {(e.get('data_commit') or '')[:12]} | {_num(e['evidence'].get('p_value'))} |"
        for e in report["ledger"]
    )
    drift = report.get("drift") or {}
    drift_rows = "\n".join(
        f"| {name} | {f.get('algorithm')} | {_num(f.get('p_value'))} | {'yes' if f.get('drifted') else 'no'} |"
        for name, f in (drift.get("features") or {}).items()
    )
    md = f"""# ratchet demo report: {report['run']}

![accuracy per batch]({plot.name})

| | |
|---|---|
| champion versions, in order | {', '.join(report['champion_versions'])} |
| accuracy of the first champion before drift | {report['accuracy_old_champion_before_drift']:.3f} |
| accuracy of the first champion after drift | {report['accuracy_old_champion_after_drift']:.3f} |
| accuracy of the new champion after drift | {report['accuracy_new_champion_after_drift']:.3f} |
| live traffic: requests / non-2xx | {report['traffic']['requests']} / {report['traffic']['non_2xx']} |
| production drift detected | {drift.get('detected')} (share of features drifted: {drift.get('drifted_share')}) |
| elapsed | {report['elapsed_s']:.0f} s |

## Promotion ledger
| id | action | trigger | from | to | data commit | p-value |
|---|---|---|---|---|---|---|
{ledger_rows}

## Production drift (champion's live inputs against its training data)
| feature | test | p-value | drifted |
|---|---|---|---|
{drift_rows}
"""
    (run_dir / "report.md").write_text(md)
    return {"report_md": str(run_dir / "report.md"), "report_json": str(run_dir / "report.json"), "plot": str(plot)}
