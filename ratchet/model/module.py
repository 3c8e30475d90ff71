"""The default model: a tabular MLP as a LightningModule.

Any LightningModule can replace it through ``train.model_class`` (an import
path) and ``train.model_args``; it is built with ``n_features``, ``n_classes``
and ``learning_rate`` plus those arguments, and must return logits.
"""

from __future__ import annotations

import importlib

import lightning.pytorch as pl
import torch
from torch import nn


class TabularMLP(pl.LightningModule):
    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=not on_step, sync_dist=True)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )


def import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"model_class must be a dotted import path, got {path!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import model_class {path!r}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        raise ValueError(f"model_class {path!r} is not a LightningModule")
    return cls


def build_module(path: str, n_features: int, n_classes: int, **kwargs) -> pl.LightningModule:
    return import_class(path)(n_features=n_features, n_classes=n_classes, **kwargs)
