"""Fit one model on a training split: preprocessing here, training local or on several ranks.

``fit`` fits the preprocessing on the training split only, turns both splits
into tensors and hands a ``FitSpec`` to ``ratchet.training.model.distributed.loop.run_fit`` in this
process, or to ``ratchet.training.model.distributed.launch.launch`` (one process per rank) when
the trainer settings ask for more than one device. Either way the weights come
back to this process, where the ``Predictor`` (preprocessor + module) is built.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from ratchet.core.config import TrainConfig
from ratchet.core.performance import Calibration
from ratchet.core.schema import Schema
from ratchet.training.model.distributed.loop import (
    EpochHistory,
    EpochProgress,
    FitSpec,
    prepare_checkpoint_dir,
    run_fit,
)
from ratchet.training.model.distributed.ranks import local_processes
from ratchet.training.model.module import import_class
from ratchet.training.model.preprocess import (
    build_preprocessor,
    encode_target,
    frame_for_model,
    layout,
    target_scale,
    target_values,
)
from ratchet.training.model.tensors import TensorBatches, TensorDataModule

__all__ = ["EpochHistory", "EpochProgress", "FitResult", "Predictor", "TabularDataModule", "TensorBatches", "fit", "world_size"]


class TabularDataModule(TensorDataModule):
    """Train/validation tensors; the preprocessor is fitted on the training split only.

    A regression target is standardised with the training split's mean and standard
    deviation (``target_scale``) so that the network's output and its loss are on a unit
    scale whatever the target's units (learning rates and Huber's threshold then mean the
    same for a count of visits as for a price); the ``Predictor`` de-standardises its output.
    """

    def __init__(
        self, train_df: pd.DataFrame, val_df: pd.DataFrame, schema: Schema, batch_size: int, seed: int, chunk: int = 1
    ):
        preprocessor = build_preprocessor(schema)
        x_train = preprocessor.fit_transform(frame_for_model(train_df, schema))
        x_val = preprocessor.transform(frame_for_model(val_df, schema))
        y_train = target_values(train_df[schema.target.name], schema.target)
        y_val = target_values(val_df[schema.target.name], schema.target)
        self.target_scale: tuple[float, float] | None = None
        if schema.target.is_regression:
            mean, sd = self.target_scale = target_scale(y_train)
            y_train = ((y_train - mean) / sd).astype(np.float32)
            y_val = ((y_val - mean) / sd).astype(np.float32)
        super().__init__(
            torch.as_tensor(np.asarray(x_train, dtype=np.float32)),
            torch.as_tensor(y_train),
            torch.as_tensor(np.asarray(x_val, dtype=np.float32)),
            torch.as_tensor(y_val),
            batch_size,
            seed,
            chunk,
        )
        self.schema = schema
        self.preprocessor = preprocessor


class Predictor:
    """Preprocessing plus network: what is logged, registered and served.

    Classification (``task`` binary or multiclass): ``predict_proba(frame)`` gives
    (n, k) probabilities index-aligned with ``classes``, ``predict(frame)`` the labels.
    Regression: ``predict(frame)`` gives a float64 array of n values in the target's
    units: the network's output de-standardised with the training target's
    ``target_scale`` (``to_target``); ``classes`` is empty and ``predict_proba`` refuses.

    Pickled as the preprocessor, the module's import path, hyperparameters and
    state dict, so loading does not depend on Lightning's checkpoint format.
    """

    def __init__(
        self,
        preprocessor,
        module: torch.nn.Module,
        module_class: str,
        schema: Schema,
        module_args: dict[str, Any] | None = None,
        target_scale: tuple[float, float] | None = None,
    ):
        self.preprocessor = preprocessor
        self.module = module.eval().cpu()
        self.module_class = module_class
        # the arguments the module was built with (else its saved hyperparameters)
        self.module_args = dict(module_args) if module_args is not None else dict(getattr(module, "hparams", {}))
        self.schema = schema
        self.task = schema.target.task
        self.classes = list(schema.target.classes or [])
        if self.task == "regression" and target_scale is None:
            raise ValueError("a regression predictor needs the training target's (mean, sd): target_scale")
        self.target_scale = None if target_scale is None else (float(target_scale[0]), float(target_scale[1]))
        self.version: str | None = None
        # top-label confidence -> P(prediction right), fitted on held-out rows (``calibrate``); the
        # served probabilities are left as they are: it feeds the estimate of accuracy without labels
        self.calibration: Calibration | None = None

    def top_label(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labelled rows' top-label confidence and whether the predicted class is right."""
        proba = self.predict_proba(df)
        return proba.max(axis=1), proba.argmax(axis=1) == encode_target(df[self.schema.target.name], self.classes)

    def calibrate(self, df: pd.DataFrame) -> Calibration | None:
        """Fit :attr:`calibration` on labelled held-out rows ``df`` (isotonic, ``ratchet.core.performance``);
        None for regression or no rows."""
        if self.task == "regression" or len(df) == 0:
            return None
        self.calibration = Calibration.fit(*self.top_label(df))
        return self.calibration

    def outputs(self, df: pd.DataFrame) -> np.ndarray:
        """The network's raw (n, outputs) outputs: logits, or the standardised regression value."""
        x = self.preprocessor.transform(frame_for_model(df, self.schema))
        with torch.inference_mode():
            return self.module(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            raise TypeError("a regression model has no class probabilities: use predict(frame)")
        return torch.softmax(torch.as_tensor(self.outputs(df)), dim=1).numpy()

    def to_target(self, outputs: np.ndarray) -> np.ndarray:
        """Regression: the network's (n, 1) standardised outputs in the target's units (float64)."""
        mean, sd = self.target_scale
        return np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)[:, 0] * sd + mean

    def predict(self, df: pd.DataFrame) -> list | np.ndarray:
        """Labels (a list) for classification; a float64 array for regression."""
        if self.task == "regression":
            return self.to_target(self.outputs(df))
        return [self.classes[i] for i in self.predict_proba(df).argmax(axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = {
            "preprocessor": self.preprocessor,
            "module_class": self.module_class,
            "hparams": dict(self.module_args),
            "state_dict": {k: v.cpu() for k, v in self.module.state_dict().items()},
            "schema": self.schema.model_dump(mode="json"),
        }
        if self.target_scale is not None:
            state["target_scale"] = list(self.target_scale)
        if self.calibration is not None:
            state["calibration"] = self.calibration.to_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from ratchet.training.model.module import import_class

        module = import_class(state["module_class"])(**state["hparams"])
        module.load_state_dict(state["state_dict"])
        self.__init__(
            state["preprocessor"], module, state["module_class"], Schema.model_validate(state["schema"]), state["hparams"],
            state.get("target_scale"),
        )
        self.calibration = Calibration.from_dict(state.get("calibration"))

    def save(self, path: Path) -> Path:
        Path(path).write_bytes(pickle.dumps(self))
        return Path(path)

    @staticmethod
    def load(path: Path) -> Predictor:
        return pickle.loads(Path(path).read_bytes())


@dataclass
class FitResult:
    predictor: Predictor
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    ranks: list[dict[str, Any]] = field(default_factory=list)  # per training process: batches, rows, pid


def trainer_settings(cfg: TrainConfig) -> dict[str, Any]:
    budget = {"max_time": {"seconds": float(cfg.max_time_s)}} if cfg.max_time_s else {}
    return {
        **budget,
        "max_epochs": cfg.max_epochs,
        "accelerator": cfg.accelerator,
        "devices": cfg.devices,
        "strategy": cfg.strategy,
        "precision": cfg.precision,
        "num_nodes": cfg.num_nodes,
    }


def small_table_batch(batch_size: int, rows: int, min_steps: int | None) -> int:
    """The batch size, lowered on a small training split so that an epoch takes ``min_steps``
    optimizer steps (never below 16 rows): 200 rows at 256 a batch would give one step per
    epoch, and 15 epochs are too few steps for any family to learn a table (measured on
    penguins and breast_cancer in benchmarks/real_data.py). Larger splits keep their batch."""
    if not min_steps or rows <= 0 or rows >= batch_size * min_steps:
        return batch_size
    return max(16, min(batch_size, math.ceil(rows / min_steps)))


def module_class_of(cfg: TrainConfig, family: str | None = None) -> str:
    """The module's import path: a search's ``family``, else ``train.family``, else ``train.model_class``."""
    from ratchet.training.model.families import family_class

    family = family or cfg.family
    return family_class(family) if family else cfg.model_class


def world_size(cfg: TrainConfig) -> int:
    """Processes one fit runs on: devices on this node times nodes."""
    return local_processes(cfg.accelerator, cfg.devices) * cfg.num_nodes


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
    resume: bool = False,
) -> FitResult:
    """Train one model. ``params`` (e.g. an Optuna trial's) override config values:
    ``learning_rate``, ``batch_size``, and any ``model_args`` key.

    ``checkpoint_dir``: ``last.ckpt`` is written there after every epoch; with
    ``resume`` a fit continues from it (epoch, weights, optimizer, early stopping
    and the epoch history), else the folder is cleared first. ``callbacks`` must
    be picklable when the fit runs on several processes."""
    params = dict(params or {})
    batch_size = small_table_batch(int(params.pop("batch_size", cfg.batch_size)), len(train_df), cfg.min_steps_per_epoch)
    lr = float(params.pop("learning_rate", cfg.learning_rate))
    module_class = module_class_of(cfg, params.pop("family", None))
    dm = TabularDataModule(train_df, val_df, schema, batch_size, cfg.seed)
    head: dict[str, Any] = {"n_classes": len(schema.target.classes or [])}
    if schema.target.is_regression:
        head = {"n_classes": 1, "task": "regression", "regression_loss": cfg.regression_loss}
    module_args = {
        "n_features": dm.n_features,
        **head,
        "learning_rate": lr,
        **cfg.model_args,
        **params,
    }
    data_args = getattr(import_class(module_class), "data_args", None)
    if data_args is not None:  # what the module fits on the training rows (the embeddings' bins)
        module_args.update(data_args(dm.x_train, *layout(dm.preprocessor, dm.n_features), module_args))
    spec = FitSpec(
        module_class=module_class,
        module_args=module_args,
        x_train=dm.x_train,
        y_train=dm.y_train,
        x_val=dm.x_val,
        y_val=dm.y_val,
        batch_size=batch_size,
        seed=cfg.seed,
        trainer=trainer_settings(cfg),
        early_stopping_patience=cfg.early_stopping_patience,
        restore_best=cfg.restore_best,
        batches_per_step=cfg.batches_per_step,
        min_epoch_steps=cfg.min_epoch_steps,
        callbacks=list(callbacks or []),
        callback_specs=[dict(c) for c in cfg.callbacks],
        checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
        resume=resume,
        progress=progress,
    )
    prepare_checkpoint_dir(spec.checkpoint_dir, resume)
    if world_size(cfg) > 1:
        from ratchet.training.model.distributed.launch import launch

        if logger:
            raise ValueError("a Lightning logger is not supported with several training processes")
        out = launch(spec)
    else:
        out = run_fit(spec, logger=logger)
    predictor = Predictor(dm.preprocessor, out.module, module_class, schema, module_args, dm.target_scale)
    return FitResult(predictor, out.metrics, out.history, out.ranks)
