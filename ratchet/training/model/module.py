"""The default model: a tabular MLP as a LightningModule.

Any LightningModule can replace it through ``train.model_class`` (an import
path) and ``train.model_args``; it is built with ``n_features``, ``n_classes``
and ``learning_rate`` plus those arguments, must return logits from
``forward`` and log ``val_loss`` (early stopping, pruning and the search
objective watch it). Batches are ``(x, y)`` tensor pairs.

For a regression target it is built with ``n_classes=1``, ``task="regression"``
and ``regression_loss`` (``mse`` or ``huber``) as well; ``y`` is the standardised
target (float32) and ``forward`` returns one output per row, shape ``(n, 1)``, on that
scale (the ``Predictor`` maps it back to the target's units).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from ratchet.core.files import import_path


class TabularMLP(pl.LightningModule):
    """MLP over preprocessed features, with several optimizer steps per Lightning step.

    Lightning's per-step machinery (hooks, loop bookkeeping, logging, the
    optimizer wrapper) costs about as much as a forward and backward pass of a
    small MLP on a batch of a few hundred rows. So the model takes *chunks* of
    batches (``TensorBatches(chunk=K)``) and runs one optimizer step per batch
    inside ``training_step`` (manual optimization): the same batches and the same
    number of optimizer steps as a plain loop, Lightning's overhead paid once per
    chunk. In one fp32 process the first K-1 steps of a chunk use the bare
    optimizer and the last one goes through Lightning's (so ``global_step``,
    checkpointing and the optimizer hooks advance once per chunk); under DDP or
    mixed precision every step goes through Lightning (``manual_backward``
    prepares DDP's reducer and scales the loss), and the data module is built
    with ``chunk=1``. The training loss is logged once per chunk.
    """

    #: ``ratchet.training.model.fit.fit`` gives chunks of batches to modules that set this
    accepts_batch_chunks = True

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        task: str = "classification",
        regression_loss: str = "mse",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.regression = task == "regression"
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if self.regression and n_classes != 1:
            raise ValueError(f"a regression head has one output, got n_classes={n_classes}")
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(h)
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)
        self.loss = _regression_loss(regression_loss) if self.regression else nn.CrossEntropyLoss()
        self._bare_steps = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(out[:, 0], y) if self.regression else self.loss(out, y)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss one optimizer step minimises (an ensemble overrides it: each member's loss)."""
        return self._loss(self(x), y)

    def on_train_start(self) -> None:
        from lightning.pytorch.plugins.precision import Precision

        trainer = self.trainer
        self._bare_steps = trainer.world_size == 1 and type(trainer.precision_plugin) is Precision

    def training_step(self, batch, batch_idx):
        chunk = [batch] if isinstance(batch[0], torch.Tensor) else batch  # one (x, y) or a list of them
        opt = self.optimizers()
        bare = opt.optimizer if self._bare_steps else None
        last = len(chunk) - 1
        loss_sum, rows = 0.0, 0
        for i, (x, y) in enumerate(chunk):
            loss = self.training_loss(x, y)
            if bare is not None and i < last:
                bare.zero_grad()
                loss.backward()
                bare.step()
            else:
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()
            loss_sum = loss_sum + loss.detach() * len(y)
            rows += len(y)
        # once per chunk; Lightning's epoch value is the row-weighted mean
        self.log("train_loss", loss_sum / rows, on_step=False, on_epoch=True, batch_size=rows, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self._loss(logits, y), prog_bar=True, sync_dist=True, batch_size=len(y))
        if self.regression:  # the loss on the standardised target is all early stopping and Optuna need
            return
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("val_acc", acc, prog_bar=True, sync_dist=True, batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )


def _regression_loss(name: str) -> nn.Module:
    """MSE (the default), or Huber: squared for residuals within one standard deviation of the
    (standardised) target, linear beyond, so a few wild values pull the fit less."""
    if name == "mse":
        return nn.MSELoss()
    if name == "huber":
        return nn.HuberLoss(delta=1.0)
    raise ValueError(f"regression_loss must be 'mse' or 'huber', got {name!r}")


def import_class(path: str) -> type:
    """The LightningModule class at the dotted import path ``path`` (``train.model_class``)."""
    cls = import_path(path, "model_class")
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        raise ValueError(f"model_class {path!r} is not a LightningModule")
    return cls


def build_module(path: str, n_features: int, n_classes: int, **kwargs) -> pl.LightningModule:
    return import_class(path)(n_features=n_features, n_classes=n_classes, **kwargs)
