"""The demo's report: ``report.json`` for machines, ``report.md`` and a plot for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratchet.core.schema import Schema
from ratchet.monitoring.drift_result import DriftResult
from ratchet.training.model.fit import Predictor
from ratchet.training.model.preprocess import encode_target


def accuracy(predictor: Predictor, frame: pd.DataFrame, schema: Schema) -> float:
    y = encode_target(frame[schema.target.name], schema.target.classes)
    return float(np.mean(predictor.predict_proba(frame).argmax(axis=1) == y))


def mean_absolute_error(predictor: Predictor, frame: pd.DataFrame, schema: Schema) -> float:
    """A regression model's MAE on labelled rows (``sklearn.metrics.mean_absolute_error``)."""
    from sklearn.metrics import mean_absolute_error as mae

    y = pd.to_numeric(frame[schema.target.name], errors="coerce").to_numpy(dtype=float)
    return float(mae(y, np.asarray(predictor.predict(frame), dtype=float)))


def held_out_score(predictor: Predictor, frame: pd.DataFrame, schema: Schema) -> float:
    """What the report plots per model: accuracy, or for a regression model its MAE."""
    scorer = mean_absolute_error if schema.target.is_regression else accuracy
    return scorer(predictor, frame, schema)


# the report's key prefix and words for each kind of target
METRIC_WORDS = {"accuracy": ("accuracy", "accuracy"), "mae": ("mae", "MAE")}


def champions_in_order(ledger) -> list[str]:
    """Every version that has been champion, first time first."""
    out: list[str] = []
    for e in ledger.history():
        if e.action in ("promote", "rollback") and e.to_version not in out:
            out.append(e.to_version)
    return out


def inline_report(ctx, run: str, data, traffic: dict, drift: DriftResult, started: float) -> tuple[dict, dict]:
    """The inline demo's report: every champion scored on held-out rows of every batch.
    Returns the report and its accuracy curves (``ctx`` gives schema, ledger, registry, repo)."""
    import time
    from dataclasses import asdict

    schema = ctx.schema
    metric = "mae" if schema.target.is_regression else "accuracy"
    champions = champions_in_order(ctx.ledger)
    curves = {
        v: [(i, held_out_score(ctx.registry.load_predictor(v), frame, schema))
            for i, frame in sorted(data.holdout.items())]
        for v in champions
    }
    after = [i for i in data.holdout if i >= data.drift_at]
    before = [i for i in data.holdout if i < data.drift_at]

    def mean_acc(version: str, idx: list[int]) -> float:
        pts = dict(curves[version])
        return sum(pts[i] for i in idx) / len(idx)

    old, new = champions[0], champions[-1]
    report = {
        "run": run,
        "elapsed_s": time.time() - started,
        "drift_onset_batch": data.drift_at,
        "champion_versions": champions,
        "metric": metric,
        f"{metric}_old_champion_before_drift": mean_acc(old, before),
        f"{metric}_old_champion_after_drift": mean_acc(old, after),
        f"{metric}_new_champion_after_drift": mean_acc(new, after),
        f"{metric}_curves": {v: dict(c) for v, c in curves.items()},
        "traffic": traffic,
        "drift": drift.to_dict(),  # the report is JSON: the monitor's finding as it writes drift.json
        "ledger": [asdict(e) for e in ctx.ledger.history()],
        "data_main_commit": ctx.repo.resolve(ctx.cfg.data.main_branch),
    }
    return report, curves


def plot_accuracy(curves: dict[str, list[tuple[int, float]]], drift_at: int, path: Path,
                  metric: str = "accuracy") -> Path:
    """Each champion's held-out figure per batch: accuracy (0..1), or MAE (``metric="mae"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for version, points in curves.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=f"model v{version}")
    ax.axvline(drift_at - 0.5, color="grey", linestyle="--", label="concept drift")
    ax.set_xlabel("batch")
    ax.set_ylabel(f"{METRIC_WORDS[metric][1]} on held-out rows")
    if metric == "accuracy":
        ax.set_ylim(0, 1)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _drift_rows(drift: dict[str, Any]) -> str:
    return "\n".join(
        f"| {name} | {f.get('algorithm')} | {_num(f.get('p_value'))} | {'yes' if f.get('drifted') else 'no'} |"
        for name, f in (drift.get("features") or {}).items()
    )


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


def write_report(run_dir: Path, report: dict[str, Any], curves: dict[str, list[tuple[int, float]]]) -> dict[str, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    metric = report.get("metric", "accuracy")
    key, words = METRIC_WORDS[metric]
    fmt = ".3f" if metric == "accuracy" else ".4g"
    plot = plot_accuracy(curves, report["drift_onset_batch"], run_dir / "accuracy.png", metric)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    ledger_rows = "\n".join(
        f"| {e['id']} | {e['action']} | {e['trigger']} | {e['from_version'] or '-'} | {e['to_version'] or '-'} "
        f"| {(e.get('data_commit') or '')[:12]} | {_num(e['evidence'].get('p_value'))} |"
        for e in report["ledger"]
    )
    drift = report.get("drift") or {}
    drift_rows = _drift_rows(drift)
    md = f"""# ratchet demo report: {report['run']}

![{words} per batch]({plot.name})

| | |
|---|---|
| champion versions, in order | {', '.join(report['champion_versions'])} |
| {words} of the first champion before drift | {report[f'{key}_old_champion_before_drift']:{fmt}} |
| {words} of the first champion after drift | {report[f'{key}_old_champion_after_drift']:{fmt}} |
| {words} of the new champion after drift | {report[f'{key}_new_champion_after_drift']:{fmt}} |
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


def plot_loop(report: dict[str, Any], path: Path) -> Path:
    """Live accuracy per model version over time, with the accuracy estimated without labels dashed
    beside it (for a regression model, live MAE: timeline rows with ``mae_by_version``), and the traffic split, with the moments drift began, was detected,
    and a better champion took over."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["timeline"]
    start = report["t0"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    regression = any(r.get("mae_by_version") for r in rows)
    by = "mae_by_version" if regression else "accuracy_by_version"
    versions = sorted({v for r in rows for v in r.get(by) or {}}, key=lambda v: int(v))
    for v in versions:
        pts = [(r["t"], r[by][v]) for r in rows if v in (r.get(by) or {})]
        line, = ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=f"model v{v}")
        est = [(r["t"], r["estimated_by_version"][v]) for r in rows if v in (r.get("estimated_by_version") or {})]
        if est and not regression:  # the estimate without labels, dashed in the same colour
            ax.plot(*zip(*est, strict=True), linestyle="--", color=line.get_color(), alpha=0.7,
                    label=f"v{v} estimated without labels")
    for key, label, style in (("drift_onset", "drift onset", "--"), ("drift_detected_at", "drift detected", ":"),
                              ("recovered_at", "new champion", "-.")):
        if report.get(key):
            for a in (ax, ax2):
                a.axvline(report[key] - start, color="grey", linestyle=style, label=label if a is ax else None)
    if regression:
        ax.set_ylabel("live MAE (feedback)")
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylabel("live accuracy (feedback)")
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left" if regression else "lower left")
    ax2.step([r["t"] for r in rows], [float(r["challenger_share"] or 0.0) for r in rows], where="post")
    ax2.set_ylabel("challenger share")
    ax2.set_xlabel("seconds since the first batch")
    ax2.set_ylim(-0.05, 1.05)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_loop_report(run_dir: Path, report: dict[str, Any]) -> dict[str, str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_loop(report, run_dir / "timeline.png")
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))

    def sec(key: str) -> str:
        return "-" if report.get(key) is None else f"{report[key] - report['drift_onset']:+.0f} s"

    ledger_rows = "\n".join(
        f"| {e['id']} | {e['action']} | {e['trigger']} | {e['from_version'] or '-'} | {e['to_version'] or '-'} "
        f"| {'-' if e.get('traffic') is None else format(e['traffic'], '.0%')} "
        f"| {e['evidence'].get('decision') or '-'} | {_num(e['evidence'].get('p_value'))} |"
        for e in report["ledger"]
    )
    drift = report.get("drift") or {}
    drift_rows = _drift_rows(drift)
    acc = {k: report.get(k) for k in ("accuracy_before_drift", "accuracy_old_champion_after_drift",
                                      "accuracy_after_recovery", "accuracy_post_drift_only_model")}
    md = f"""# ratchet demo report: {report['run']} (event-driven)

Only data commits and traffic came from the demo; training, evaluation and
promotion were started by Prefect automations.

![live accuracy and traffic split]({plot.name})

| | |
|---|---|
| champion versions, in order | {', '.join(report['champion_versions'])} |
| drift onset (first drifted batch published) | 0 s |
| drift detected by the monitoring flow | {sec('drift_detected_at')} |
| better champion at 100% traffic (the first to beat the old one after drift) | {sec('recovered_at')} |
| final champion at 100% traffic | {sec('final_champion_at')} |
| accuracy before drift (old champion) | {_num(acc['accuracy_before_drift'])} |
| accuracy after drift, old champion | {_num(acc['accuracy_old_champion_after_drift'])} |
| accuracy after recovery, new champion | {_num(acc['accuracy_after_recovery'])} |
| a model trained on post-drift data alone | {_num(acc['accuracy_post_drift_only_model'])} |
| non-2xx responses | {report['non_2xx']} |

Accuracies are on held-out rows of each batch (1,000 rows a batch), not on the traffic.

## Promotion ledger (the gate's p-value; the canary's steps: challenger share and decision)
| id | action | trigger | from | to | share | step | p-value |
|---|---|---|---|---|---|---|---|
{ledger_rows}

## First drift detection after onset ({drift.get('reason') or ''})
| feature | test | p-value | drifted |
|---|---|---|---|
{drift_rows}
"""
    (run_dir / "report.md").write_text(md)
    html = _markdown_to_html(md)
    (run_dir / "report.html").write_text(html)
    return {"report_md": str(run_dir / "report.md"), "report_json": str(run_dir / "report.json"),
            "report_html": str(run_dir / "report.html"), "plot": str(plot)}


def _markdown_to_html(md: str) -> str:
    """The report's own small markdown (headings, one image, pipe tables) as HTML.

    Hand-written because it is 20 lines for a fixed format and no markdown
    library is among the project's dependencies.
    """
    import html as h

    out, table = ["<html><head><meta charset='utf-8'><title>ratchet report</title></head><body>"], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            out.append(("<table border='1' cellpadding='4'>" if not table else "") + "<tr>"
                       + "".join(f"<td>{h.escape(c)}</td>" for c in cells) + "</tr>")
            table = True
            continue
        if table:
            out.append("</table>")
            table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{h.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : line.rindex(")")]
            out.append(f"<img src='{h.escape(src)}' width='720'>")
        elif line.strip():
            out.append(f"<p>{h.escape(line)}</p>")
    if table:
        out.append("</table>")
    return "\n".join(out + ["</body></html>"])
