"""Demo stage: synthetic data in, report out."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ratchet.demo.report import accuracy, write_report
from ratchet.demo.stream import DemoData, make_demo_data
from ratchet.runtime.context import Context


@task(cache_policy=NO_CACHE)
def generate_demo_data(ctx: Context, run_dir: str) -> DemoData:
    return make_demo_data(ctx.cfg.demo, Path(run_dir) / "incoming")


@task(cache_policy=NO_CACHE)
def write_demo_report(
    ctx: Context, run: str, run_dir: str, data: DemoData, traffic: dict, drift: dict, started: float
) -> dict:
    """Score every champion on held-out rows of every batch; write report.json/.md and the plot."""
    schema = ctx.schema
    champions: list[str] = []
    for e in ctx.ledger.history():
        if e.action in ("promote", "rollback") and e.to_version not in champions:
            champions.append(e.to_version)
    predictors = {v: ctx.registry.load_predictor(v) for v in champions}
    curves = {
        v: [(i, accuracy(p, frame, schema)) for i, frame in sorted(data.holdout.items())]
        for v, p in predictors.items()
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
        "accuracy_old_champion_before_drift": mean_acc(old, before),
        "accuracy_old_champion_after_drift": mean_acc(old, after),
        "accuracy_new_champion_after_drift": mean_acc(new, after),
        "accuracy_curves": {v: dict(c) for v, c in curves.items()},
        "traffic": traffic,
        "drift": drift,
        "ledger": [asdict(e) for e in ctx.ledger.history()],
        "data_main_commit": ctx.repo.resolve(ctx.cfg.data.main_branch),
    }
    files = write_report(Path(run_dir), report, curves)
    create_markdown_artifact(Path(files["report_md"]).read_text(), key="demo-report")
    return {**report, **files}
