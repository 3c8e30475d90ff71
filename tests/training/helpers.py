"""Real components the training tests plug in: a second LightningModule, callbacks, a home with data."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn


class TinyLogReg(pl.LightningModule):
    """Not the default MLP: multinomial logistic regression with automatic optimization."""

    def __init__(self, n_features: int, n_classes: int, learning_rate: float = 0.05, l2: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y) + self.hparams.l2 * self.linear.weight.pow(2).sum()
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


class ScriptedValLoss(TinyLogReg):
    """TinyLogReg (it trains for real) whose logged ``val_loss`` is ``losses[epoch]``: a test sets
    the validation curve the stopping rule sees."""

    def __init__(self, n_features: int, n_classes: int, losses: list[float], learning_rate: float = 0.05):
        super().__init__(n_features, n_classes, learning_rate)
        self.losses = [float(v) for v in losses]

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self(x)
        self.log("val_loss", torch.tensor(self.losses[self.current_epoch]), batch_size=len(y))


class CrashOnce(Callback):
    """Raises at the start of epoch ``epoch`` unless ``marker`` exists (it creates it):
    the first attempt crashes inside Lightning's loop, a retry runs through.
    Every epoch start is appended to ``marker``.log as "pid epoch"."""

    def __init__(self, epoch: int, marker: str):
        self.epoch, self.marker = int(epoch), Path(marker)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        with open(f"{self.marker}.log", "a") as fh:
            fh.write(f"{os.getpid()} {trainer.current_epoch}\n")
        if trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.write_text("crashed once")
            raise RuntimeError(f"injected crash at epoch {self.epoch}")


class HoldAt(Callback):
    """On the global ranks in ``ranks``, at the start of epoch ``epoch``: writes
    ``<marker>.<rank>`` (this process's pid) and sleeps ``hold_s``, so a test can act
    on a fit that is certainly in flight (the other ranks wait for these in DDP)."""

    def __init__(self, epoch: int, marker: str, ranks: list[int], hold_s: float):
        self.epoch, self.marker, self.ranks, self.hold_s = int(epoch), str(marker), list(ranks), float(hold_s)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and trainer.global_rank in self.ranks:
            Path(f"{self.marker}.{trainer.global_rank}").write_text(str(os.getpid()))
            time.sleep(self.hold_s)


class OutputsAtFitEnd(Callback):
    """Training-time outputs: the fitted module's own forward on the data module's
    validation tensors, as softmax probabilities, in eval mode."""

    def __init__(self) -> None:
        self.proba: np.ndarray | None = None

    def on_fit_end(self, trainer, pl_module) -> None:
        pl_module.eval()
        with torch.no_grad():
            x = trainer.datamodule.x_val
            self.proba = torch.softmax(pl_module(x), dim=1).cpu().numpy()


def epochs_started(marker: Path) -> list[tuple[int, int]]:
    log = Path(f"{marker}.log")
    return [tuple(int(v) for v in line.split()) for line in log.read_text().splitlines()] if log.exists() else []


def publish_batches(ctx, frames, folder: Path) -> str:
    """Publish frames to the home's main branch through the core library (no flow)."""
    from ratchet.data import ingest
    from ratchet.demo.synthetic import write_batch

    commit = ""
    for i, df in enumerate(frames):
        path = write_batch(df, folder / f"batch-{i}.csv")
        audited = ingest.audit_batch(path, ctx.schema)
        assert audited.ok, audited.violations
        branch = ingest.stage_batch(ctx.repo, audited, path, ctx.cfg.data)
        ingest.commit_batch(ctx.repo, branch, audited)
        commit = ingest.publish_batch(ctx.repo, branch, audited, ctx.cfg.data)
    return commit


def home_with_data(home: Path, config_files: list[str], batches: int = 2, rows: int = 700, seed: int = 5):
    """A home with a schema and ``batches`` clean batches on main."""
    from ratchet.core.schema import dump_schema
    from ratchet.data.schema_inference import infer_schema
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.runtime.context import load_context

    ctx = load_context(config_files, home=str(home))
    frames = [generate_batch(i, rows, seed=seed) for i in range(batches)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    folder = home / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    publish_batches(ctx, frames, folder)
    return ctx


def flow_runs_with(home: Path, flow_name: str) -> list:
    """Flow runs of ``flow_name`` run on this home (Prefect's API): their ``options``
    parameter's ``home`` (a ``RunOptions``), or a ``home`` parameter of their own."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200)

    def home_of(parameters: dict) -> str | None:
        options = parameters.get("options") or {}
        return options.get("home") if isinstance(options, dict) and "home" in options else parameters.get("home")

    return [r for r in runs if home_of(r.parameters) == str(home)]


def task_runs_of(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def dump(obj) -> str:
    return json.dumps(obj, default=str, indent=1)
