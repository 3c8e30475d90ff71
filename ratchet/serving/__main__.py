"""``python -m ratchet.serving [--host H] [--port P]``: the inference service in a process of its own.

Models come from the registry of ``RATCHET_HOME`` (or ``RATCHET_MLFLOW_TRACKING_URI``) by
alias; configuration from ``RATCHET_CONFIG``; ``RATCHET_ADMIN_TOKEN`` protects the admin
routes (without it the service refuses any address but loopback) and ``RATCHET_API_KEY``
``/predict``; ``RATCHET_MODEL_VERSION`` pins one registry
version as the champion (no aliases followed, no challenger). Because the process only serves, torch's
intra-op threads are set to ``serving.torch_threads`` (one request's tiny matrix gains
nothing from a thread pool, and idle pool threads spin on a shared machine). uvicorn uses
httptools/uvloop (dependencies of ratchet) when they are installed, h11/asyncio otherwise, under
a transport that sends each response's head and body in one write (:mod:`ratchet.serving.transport`).
Live profiling (whylogs) runs in a worker process of its own, so that a profiling pass never
holds the GIL the event loop needs; ``RATCHET_PROFILE_PROCESS=0`` keeps it in a thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


class PinnedProvider:
    """One registry version as the champion, no challenger (``RATCHET_MODEL_VERSION``): for a
    platform that canaries by revision, such as KServe's ``canaryTrafficPercent``."""

    def __init__(self, registry, version: str):
        self.registry, self.version = registry, str(version)
        registry.activate()

    def versions(self) -> dict[str, str | None]:
        return {"champion": self.version, "challenger": None}

    def load(self, alias: str):
        return self.registry.load_predictor(self.version) if alias == "champion" else None


def build_app():
    from ratchet.runtime.context import load_context
    from ratchet.serving.app import create_app
    from ratchet.training.registry import RegistryProvider

    ctx = load_context()
    cfg = ctx.cfg.serving
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    pinned = os.environ.get("RATCHET_MODEL_VERSION")
    provider = PinnedProvider(ctx.registry, pinned) if pinned else RegistryProvider(ctx.registry)
    return ctx, create_app(
        provider, cfg, ctx.settings.serving_dir,
        admin_token=os.environ.get("RATCHET_ADMIN_TOKEN") or None,
        api_key=os.environ.get("RATCHET_API_KEY") or None,
        profile_window_s=cfg.profile_window_s,
        profile_process=os.environ.get("RATCHET_PROFILE_PROCESS", "1") != "0",
        model_name=ctx.cfg.model_name,
    )


def tune_process(app) -> None:
    """Load the models now, then settle the process for serving:

    * ``gc.freeze()``: the ~500,000 objects of torch, pandas, sklearn, mlflow and the models
      move out of the cyclic collector's reach; a full collection over them takes 0.4-0.5 s
      (measured), a stall every request in flight would wait for;
    * a 1 ms GIL switch interval (5 ms by default): while the profiler thread works, the
      event loop waits at most about 1 ms for the GIL at each step of a request."""
    import gc

    app.state.ratchet.ensure_started()  # the lifespan then finds it started
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


def log_server_stack() -> None:
    """Say which event loop and HTTP parser uvicorn will pick (loop="auto", http="auto")."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    logging.getLogger("ratchet.serving").log(
        logging.INFO if loop == "uvloop" and http == "httptools" else logging.WARNING,
        "uvicorn: %s event loop, %s HTTP parser%s", loop, http,
        "" if loop == "uvloop" and http == "httptools" else " (install uvloop and httptools for lower latency)",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ratchet.serving", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default=None)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    from ratchet.core.config import load_config
    from ratchet.serving.middleware import OpenAdminError, check_bind

    host = args.host or load_config().serving.host
    try:  # before the stores and models load: a refusal is one line, at once
        check_bind(host, os.environ.get("RATCHET_ADMIN_TOKEN"))
    except OpenAdminError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ctx, app = build_app()
    tune_process(app)
    log_server_stack()
    run_server(app, host, args.port or ctx.cfg.serving.port, args.log_level)
    return 0


def run_server(app, host: str, port: int, log_level: str = "warning") -> None:
    """uvicorn as the service runs it (``python -m ratchet.serving`` and ``ratchet serve``)."""
    import uvicorn

    from ratchet.serving.transport import service_options

    uvicorn.run(app, host=host, port=port, log_level=log_level, **service_options())


if __name__ == "__main__":
    sys.exit(main())
