"""Serving stage: run the inference service, send it traffic."""

from __future__ import annotations

import pandas as pd

from ratchet.demo.traffic import BackgroundServer, send_traffic
from ratchet.runtime.context import Context
from ratchet.serving.app import create_app
from ratchet.training.registry import RegistryProvider
from ratchet_prefect.options import ONCE_MORE, task


@task(**ONCE_MORE)
def start_service(ctx: Context) -> BackgroundServer:
    app = create_app(
        RegistryProvider(ctx.registry), ctx.cfg.serving, ctx.settings.serving_dir,
        profile_window_s=ctx.cfg.serving.profile_window_s,
    )
    return BackgroundServer(app, host=ctx.cfg.serving.host).start()


@task
def send_requests(ctx: Context, server: BackgroundServer, frame: pd.DataFrame) -> dict:
    """Single-row requests with their true labels posted back as feedback; then the
    service's pending live profiles are written, so monitoring sees this traffic."""
    server.app.state.ratchet.reload()  # pick up an alias just moved, without waiting for the watcher
    stats = send_traffic(server.url, frame, ctx.schema.target.name).to_dict()
    server.app.state.ratchet.flush()
    return stats


@task
def stop_service(server: BackgroundServer) -> None:
    server.stop()
