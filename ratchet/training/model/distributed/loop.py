"""One Lightning fit on tensors: what runs in the calling process or in each rank.

``FitSpec`` holds everything a training needs once preprocessing is done
(tensors, the module's import path and arguments, trainer settings, callbacks,
checkpoint folder), so it can be handed to a rank process as one file.
``run_fit`` builds the Trainer from it and returns the fitted module with its
metrics. It imports torch, Lightning, the tensor modules and ``ranks`` only.
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from ratchet.core.files import import_path
from ratchet.core.progress import step
from ratchet.training.model.distributed.ranks import local_processes
from ratchet.training.model.module import import_class
from ratchet.training.model.tensors import TensorDataModule

LAST = "last"  # checkpoint file stem: <checkpoint_dir>/last.ckpt


@dataclass
class FitSpec:
    module_class: str
    module_args: dict[str, Any]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    batch_size: int
    seed: int
    trainer: dict[str, Any]  # max_epochs, accelerator, devices, strategy, precision, num_nodes
    early_stopping_patience: int | None = 3
    restore_best: bool = False
    batches_per_step: int = 1
    min_epoch_steps: int | None = None  # a small training split is passed over several times an epoch
    callbacks: list[Callback] = field(default_factory=list)
    callback_specs: list[dict[str, Any]] = field(default_factory=list)  # {class_path, init_args}
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = False


@dataclass
class FitOutput:
    module: pl.LightningModule
    metrics: dict[str, float]
    history: list[dict[str, float]]
    ranks: list[dict[str, Any]] = field(default_factory=list)


class EpochProgress(Callback):
    """Each finished epoch, told to ``ratchet.core.progress`` (a bar on the CLI's terminal)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.step = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.step = step(f"{self.what}: epochs", total=trainer.max_epochs, unit="epochs").__enter__()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.step is not None:
            self.step.update(trainer.current_epoch + 1)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.step is not None:
            self.step.__exit__(None, None, None)
            self.step = None


class EpochHistory(Callback):
    """Each epoch's logged metrics (training and validation), for the training curve,
    plus this process's batch and row counts of the last epoch. Its rows are saved
    in checkpoints, so a resumed fit keeps the curve of the epochs before the crash."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.start_epoch = 0
        self.train_batches = 0
        self.rows_seen = 0
        self.train_seconds = 0.0
        self._t0 = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_epoch = int(trainer.current_epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.train_batches = self.rows_seen = 0
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        chunk = [batch] if isinstance(batch[0], torch.Tensor) else batch
        self.train_batches += len(chunk)
        self.rows_seen += sum(len(b[1]) for b in chunk)
        self.train_seconds = time.perf_counter() - self._t0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # the epoch's training metrics are reduced by now, validation's are kept
        row = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


class BestWeights(Callback):
    """Keeps the weights of the epoch with the lowest ``val_loss`` and puts them back at the end of
    the fit, so early stopping returns the best epoch's model, not the one ``patience`` epochs past
    it (what the TabM and embeddings papers evaluate, and what most helps the small tables ratchet
    often trains on). Every rank sees the same synced ``val_loss``, so every rank keeps the same
    epoch. The copy is saved in checkpoints, so a resumed fit keeps it."""

    def __init__(self) -> None:
        self.best: float | None = None
        self.epoch: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        if self.best is None or loss < self.best:  # a NaN loss is never best
            self.best, self.epoch = loss, int(trainer.current_epoch)
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.weights is not None:
            pl_module.load_state_dict(self.weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.epoch = state_dict.get("best"), state_dict.get("epoch")
        self.weights = state_dict.get("weights")


def build_callback(spec: dict[str, Any]) -> Callback:
    """A Lightning callback from ``{"class_path": "pkg.mod.Class", "init_args": {...}}``."""
    path = spec.get("class_path")
    if not path:
        raise ValueError(f"callback spec needs a class_path: {spec!r}")
    cb = import_path(path, "callback")(**dict(spec.get("init_args") or {}))
    if not isinstance(cb, Callback):
        raise ValueError(f"callback {path!r} is not a lightning.pytorch Callback")
    return cb


def prepare_checkpoint_dir(folder: str | None, resume: bool) -> None:
    """Called once, by the launching process: a fresh (not resumed) fit starts from
    an empty folder, so a stale checkpoint of an unrelated run is never picked up."""
    if folder is None:
        return
    path = Path(folder)
    if not resume and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _checkpointing(spec: FitSpec) -> tuple[list[Callback], str | None]:
    """ModelCheckpoint writing ``last.ckpt`` at the end of every training epoch, and
    the path to resume from when ``spec.resume`` and a checkpoint exists."""
    if not spec.checkpoint_dir:
        return [], None
    last = Path(spec.checkpoint_dir) / f"{LAST}.ckpt"
    # Lightning 2.6 writes ``save_last`` only in a step where a top-k save happened,
    # so the "top 1 without monitor" file itself is named last.ckpt.
    # Saved at the end of the training epoch, after validation and after EpochHistory
    # recorded the epoch (checkpoint callbacks run after the others there).
    cb = ModelCheckpoint(
        dirpath=spec.checkpoint_dir, filename=LAST, save_top_k=1, monitor=None,
        enable_version_counter=False, save_on_train_epoch_end=True,
    )
    return [cb], (str(last) if spec.resume and last.exists() else None)


def run_fit(spec: FitSpec, *, logger: Any = False) -> FitOutput:
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    cls = import_class(spec.module_class)
    module = cls(**spec.module_args)
    chunk = spec.batches_per_step if getattr(cls, "accepts_batch_chunks", False) else 1
    if _world_size(spec.trainer) > 1:
        chunk = 1  # DDP needs one forward through its wrapper per backward
    dm = TensorDataModule(spec.x_train, spec.y_train, spec.x_val, spec.y_val, spec.batch_size, spec.seed, chunk,
                           spec.min_epoch_steps)
    history = EpochHistory()
    callbacks: list[Callback] = [history]
    if spec.early_stopping_patience is not None:
        callbacks.append(EarlyStopping("val_loss", patience=spec.early_stopping_patience))
    best = BestWeights() if spec.restore_best else None
    callbacks += [best] if best is not None else []
    ckpt_callbacks, ckpt_path = _checkpointing(spec)
    callbacks += ckpt_callbacks
    callbacks += [build_callback(s) for s in spec.callback_specs]
    callbacks += list(spec.callbacks)
    trainer = pl.Trainer(
        **spec.trainer,
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=bool(ckpt_callbacks),
        default_root_dir=spec.checkpoint_dir,
        enable_progress_bar=spec.progress,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        # resuming: the checkpoint folder is not empty, by design
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if best is not None and best.epoch is not None:  # the model is the best epoch's: so are its validation metrics
        row = next((r for r in history.rows if int(r["epoch"]) == best.epoch), {})
        metrics.update({k: float(v) for k, v in row.items() if k.startswith("val_")})
        metrics["val_loss"] = float(best.best)
        metrics["best_epoch"] = float(best.epoch)
    metrics["epochs"] = float(trainer.current_epoch)
    metrics["start_epoch"] = float(history.start_epoch)
    rank = {
        "rank": int(trainer.global_rank),
        "world_size": int(trainer.world_size),
        "train_batches_per_epoch": history.train_batches,
        "train_rows_per_epoch": history.rows_seen,
        "train_seconds_last_epoch": history.train_seconds,
        "sampler": type(trainer.train_dataloader.sampler).__name__ if trainer.train_dataloader else None,
        "device": str(trainer.strategy.root_device),
    }
    return FitOutput(module, metrics, history.rows, [rank])


def _world_size(trainer: dict[str, Any]) -> int:
    return local_processes(trainer.get("accelerator", "cpu"), trainer.get("devices", 1)) * int(
        trainer.get("num_nodes", 1)
    )
