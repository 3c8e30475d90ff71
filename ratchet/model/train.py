"""Fit one model on a training split: data module, trainer from config, predictor out."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from ratchet.config import Schema, TrainConfig
from ratchet.model.module import build_module
from ratchet.model.preprocess import build_preprocessor, encode_target, frame_for_model


class TensorBatches(torch.utils.data.IterableDataset):
    """Whole batches sliced from tensors held in memory, reshuffled each epoch.

    A DataLoader over single rows spends most of its time collating them; for
    tabular data that fits in memory, slicing a permuted index is much cheaper.
    Under torch.distributed each rank takes every world_size-th batch.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int):
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.epoch = 0

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        _, world = self._rank()
        return max(1, math.ceil(len(self.x) / self.batch_size) // world)

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
            self.epoch += 1
        else:
            order = torch.arange(n)
        rank, world = self._rank()
        starts = list(range(0, n, self.batch_size))
        # equal batch count on every rank, or DDP's collectives wait forever
        usable = max(1, len(starts) // world) * world if world > 1 else len(starts)
        for i in starts[:usable][rank::world]:
            idx = order[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


class TabularDataModule(pl.LightningDataModule):
    """Train/validation tensors; the preprocessor is fitted on the training split only."""

    def __init__(self, train_df: pd.DataFrame, val_df: pd.DataFrame, schema: Schema, batch_size: int, seed: int):
        super().__init__()
        self.schema, self.batch_size, self.seed = schema, batch_size, seed
        self.preprocessor = build_preprocessor(schema)
        classes = schema.target.classes
        x_train = self.preprocessor.fit_transform(frame_for_model(train_df, schema))
        self.x_train = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
        self.y_train = torch.as_tensor(encode_target(train_df[schema.target.name], classes))
        self.x_val = torch.as_tensor(
            np.asarray(self.preprocessor.transform(frame_for_model(val_df, schema)), dtype=np.float32)
        )
        self.y_val = torch.as_tensor(encode_target(val_df[schema.target.name], classes))

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def train_dataloader(self):
        ds = TensorBatches(self.x_train, self.y_train, self.batch_size, shuffle=True, seed=self.seed)
        return torch.utils.data.DataLoader(ds, batch_size=None)

    def val_dataloader(self):
        ds = TensorBatches(self.x_val, self.y_val, max(self.batch_size, 4096), shuffle=False, seed=0)
        return torch.utils.data.DataLoader(ds, batch_size=None)


class Predictor:
    """Preprocessing plus network: what is logged, registered and served.

    Pickled as the preprocessor, the module's import path, hyperparameters and
    state dict, so loading does not depend on Lightning's checkpoint format.
    """

    def __init__(self, preprocessor, module: torch.nn.Module, module_class: str, schema: Schema):
        self.preprocessor = preprocessor
        self.module = module.eval().cpu()
        self.module_class = module_class
        self.schema = schema
        self.classes = list(schema.target.classes)
        self.version: str | None = None

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        x = self.preprocessor.transform(frame_for_model(df, self.schema))
        with torch.inference_mode():
            logits = self.module(torch.as_tensor(np.asarray(x, dtype=np.float32)))
            return torch.softmax(logits, dim=1).numpy()

    def predict(self, df: pd.DataFrame) -> list:
        return [self.classes[i] for i in self.predict_proba(df).argmax(axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        return {
            "preprocessor": self.preprocessor,
            "module_class": self.module_class,
            "hparams": dict(self.module.hparams),
            "state_dict": {k: v.cpu() for k, v in self.module.state_dict().items()},
            "schema": self.schema.model_dump(mode="json"),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        from ratchet.model.module import import_class

        module = import_class(state["module_class"])(**state["hparams"])
        module.load_state_dict(state["state_dict"])
        self.__init__(state["preprocessor"], module, state["module_class"], Schema.model_validate(state["schema"]))

    def save(self, path: Path) -> Path:
        Path(path).write_bytes(pickle.dumps(self))
        return Path(path)

    @staticmethod
    def load(path: Path) -> Predictor:
        return pickle.loads(Path(path).read_bytes())


class EpochHistory(Callback):
    """Keeps each epoch's logged metrics, for the training curve."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        self.rows.append(row)


@dataclass
class FitResult:
    predictor: Predictor
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


def fit(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    schema: Schema,
    cfg: TrainConfig,
    params: dict[str, Any] | None = None,
    *,
    callbacks: list[Callback] | None = None,
    logger: Any = False,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
) -> FitResult:
    """Train one model. ``params`` (e.g. an Optuna trial's) override config values:
    ``learning_rate``, ``batch_size``, and any ``model_args`` key."""
    params = dict(params or {})
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    batch_size = int(params.pop("batch_size", cfg.batch_size))
    lr = float(params.pop("learning_rate", cfg.learning_rate))
    dm = TabularDataModule(train_df, val_df, schema, batch_size, cfg.seed)
    model_args = {**cfg.model_args, **params}
    module = build_module(
        cfg.model_class, dm.n_features, len(schema.target.classes), learning_rate=lr, **model_args
    )
    history = EpochHistory()
    cbs: list[Callback] = [history, EarlyStopping("val_loss", patience=cfg.early_stopping_patience)]
    cbs += callbacks or []
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        num_nodes=cfg.num_nodes,
        callbacks=cbs,
        logger=logger,
        enable_checkpointing=checkpoint_dir is not None,
        default_root_dir=str(checkpoint_dir) if checkpoint_dir else None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics["epochs"] = float(trainer.current_epoch)
    return FitResult(Predictor(dm.preprocessor, module, cfg.model_class, schema), metrics, history.rows)
