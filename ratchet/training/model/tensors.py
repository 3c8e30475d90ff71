"""Tensors in memory as Lightning data: whole-batch slicing, sharded by rank.

This module imports torch and Lightning only (no pandas, no scikit-learn), so a
training rank (``ratchet.training.model.distributed.rank_main``) imports as little as
possible: the preprocessing runs once, in the process that launched training.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TensorBatches(torch.utils.data.IterableDataset):
    """Whole batches sliced from tensors held in memory, reshuffled each epoch.

    A DataLoader over single rows spends most of its time collating them; for
    tabular data that fits in memory, slicing a permuted index is much cheaper.

    Under torch.distributed each rank takes every world_size-th row of the
    epoch's permutation, the permutation padded by repeating its head so that
    every rank gets the same number of rows, hence of batches (DDP's gradient
    all-reduce needs every rank to take the same number of steps). This is what
    ``DistributedSampler(drop_last=False)`` does; Lightning does not insert one
    for an IterableDataset, so the sharding lives here. Evaluation data
    (``shuffle=False``) is sharded without padding, so no row counts twice.

    ``chunk > 1`` yields lists of ``chunk`` batches: a module that takes several
    optimizer steps per Lightning step (see ``TabularMLP``) pays Lightning's
    per-step overhead once per chunk.

    ``passes > 1`` (training only): an epoch is that many passes over the rows, each in a
    fresh permutation (``epoch_passes``: a small training split's epoch would otherwise be
    a handful of optimizer steps between two validations).
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int, chunk: int = 1,
        passes: int = 1,
    ):
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, int(batch_size), shuffle, seed
        self.chunk = max(1, int(chunk))
        self.passes = max(1, int(passes)) if shuffle else 1
        self.epoch = 0

    def _rows_per_rank(self, rank: int, world: int) -> int:
        n = len(self.x)
        if self.shuffle:
            return math.ceil(n * self.passes / world)
        return len(range(rank, n, world))

    def __len__(self) -> int:
        rank, world = _rank_world()
        batches = math.ceil(self._rows_per_rank(rank, world) / self.batch_size)
        return max(1, math.ceil(batches / self.chunk))

    def _order(self, rank: int, world: int) -> torch.Tensor:
        n = len(self.x)
        if not self.shuffle:
            return torch.arange(rank, n, world, device=self.x.device)
        # pass p of epoch e is seeded by e * passes + p: with one pass, the permutations are as before
        perms = []
        for p in range(self.passes):
            g = torch.Generator().manual_seed(self.seed + self.epoch * self.passes + p)
            perms.append(torch.randperm(n, generator=g))
        order = perms[0] if self.passes == 1 else torch.cat(perms)
        self.epoch += 1
        n = len(order)
        if world > 1:
            total = math.ceil(n / world) * world
            order = torch.cat([order, order[: total - n]])[rank::world]
        return order.to(self.x.device)

    def __iter__(self):
        return self.shard(*_rank_world())

    def shard(self, rank: int, world: int):
        """The batches (or chunks) of ``rank`` among ``world`` for the next epoch."""
        order = self._order(rank, world)
        bs = self.batch_size
        batches = ((self.x[idx], self.y[idx]) for idx in (order[i : i + bs] for i in range(0, len(order), bs)))
        if self.chunk == 1:
            yield from batches
            return
        group: list = []
        for b in batches:
            group.append(b)
            if len(group) == self.chunk:
                yield group
                group = []
        if group:
            yield group


def epoch_passes(rows: int, batch_size: int, min_steps: int | None) -> int:
    """Passes over the training rows that make one epoch: enough that an epoch takes at least
    ``min_steps`` optimizer steps (``train.min_epoch_steps``), at least one.

    Why: each epoch ends with a validation pass, the early-stopping and pruning checks and a
    checkpoint, about a second on 2 CPU cores whatever the rows, while 8 steps of TabM on 150
    rows take 0.06 s; and ``max_epochs``/``early_stopping_patience`` count epochs, so a table of
    1,000 rows got 120 optimizer steps in 15 epochs and stopped there still improving
    (segments, benchmarks/real_data.py). Several passes per epoch give a small table the steps
    a large one gets, at the same number of validations; a split of ``min_steps`` batches or
    more is unchanged."""
    if not min_steps or rows <= 0:
        return 1
    # the passes are one concatenated permutation cut into batches: min_steps batches need that many rows
    return max(1, math.ceil(min_steps * batch_size / rows))


class TensorDataModule(pl.LightningDataModule):
    """Train/validation tensors already preprocessed.

    On an accelerator the tensors move to the device once, at the first
    dataloader request, so each batch is sliced on the device rather than copied
    from host memory step by step.
    """

    def __init__(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        batch_size: int,
        seed: int,
        chunk: int = 1,
        min_epoch_steps: int | None = None,
    ):
        super().__init__()
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val
        self.batch_size, self.seed, self.chunk = int(batch_size), seed, chunk
        self.min_epoch_steps = min_epoch_steps

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def _to_device(self) -> None:
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type != "cpu" and self.x_train.device != device:
            self.x_train, self.y_train = self.x_train.to(device), self.y_train.to(device)
            self.x_val, self.y_val = self.x_val.to(device), self.y_val.to(device)

    def train_dataloader(self):
        self._to_device()
        _, world = _rank_world()
        passes = epoch_passes(math.ceil(len(self.x_train) / world), self.batch_size, self.min_epoch_steps)
        ds = TensorBatches(self.x_train, self.y_train, self.batch_size, True, self.seed, self.chunk, passes)
        # resumed from a checkpoint: continue the sequence of epoch permutations
        trainer = getattr(self, "trainer", None)
        ds.epoch = int(trainer.current_epoch) if trainer is not None else 0
        return torch.utils.data.DataLoader(ds, batch_size=None)

    def val_dataloader(self):
        self._to_device()
        ds = TensorBatches(self.x_val, self.y_val, max(self.batch_size, 4096), False, 0)
        return torch.utils.data.DataLoader(ds, batch_size=None)
