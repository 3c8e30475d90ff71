"""Demo stage: synthetic data in, report out."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact

from ratchet.demo.report import inline_report, write_report
from ratchet.demo.stream import DemoData, make_demo_data
from ratchet.monitoring.drift_result import DriftResult
from ratchet.runtime.context import Context
from ratchet_prefect.options import task


@task
def generate_demo_data(ctx: Context, run_dir: str) -> DemoData:
    return make_demo_data(ctx.cfg.demo, Path(run_dir) / "incoming")


@task
def write_demo_report(
    ctx: Context, run: str, run_dir: str, data: DemoData, traffic: dict, drift: DriftResult, started: float
) -> dict:
    """Score every champion on held-out rows of every batch; write report.json/.md and the plot."""
    report, curves = inline_report(ctx, run, data, traffic, drift, started)
    files = write_report(Path(run_dir), report, curves)
    create_markdown_artifact(Path(files["report_md"]).read_text(), key="demo-report")
    return {**report, **files}
