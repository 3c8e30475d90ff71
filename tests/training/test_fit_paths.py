"""Training paths: serving equals training, any LightningModule, rank sharding, resume."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from ratchet.core.config import BUILTIN_CONFIG, load_config
from ratchet.demo.synthetic import DEMO_TARGET
from ratchet.training.model.fit import Predictor, fit, small_table_batch
from ratchet.training.model.tensors import TensorBatches, epoch_passes
from ratchet.training.search import calibrate, refit
from ratchet.training.window import TrainingData
from tests.training.helpers import OutputsAtFitEnd, epochs_started


def test_training_time_and_serving_time_outputs_are_identical(setup, ctx):
    """The module's own forward on the data module's tensors at the end of training
    equals the predictor and the registered pyfunc on the same rows, raw."""
    cfg, schema, train, val, _ = setup
    seen = OutputsAtFitEnd()
    result = fit(train, val, schema, cfg.train, callbacks=[seen], progress=False)
    assert seen.proba is not None and seen.proba.shape == (len(val), 2)

    np.testing.assert_array_equal(result.predictor.predict_proba(val), seen.proba)

    ctx.registry.activate()
    with mlflow.start_run():
        uri = ctx.registry.log_predictor(result.predictor, train[schema.feature_names])
    served = mlflow.pyfunc.load_model(uri).predict(val[schema.feature_names])
    proba = served[[f"proba_{c}" for c in schema.target.classes]].to_numpy()
    np.testing.assert_allclose(proba, seen.proba, rtol=0, atol=1e-7)
    assert list(served["prediction"]) == [schema.target.classes[i] for i in seen.proba.argmax(axis=1)]


def test_any_lightning_module_by_import_path(setup):
    cfg, schema, train, val, test = setup
    tc = cfg.train.model_copy(update={"model_class": "tests.training.helpers.TinyLogReg", "model_args": {"l2": 1e-4}})
    result = fit(train, val, schema, tc, {"learning_rate": 0.1}, progress=False)
    assert type(result.predictor.module).__name__ == "TinyLogReg"
    assert result.predictor.module.hparams.l2 == 1e-4 and result.predictor.module.hparams.learning_rate == 0.1
    acc = np.mean(np.array(result.predictor.predict(test)) == test[DEMO_TARGET].to_numpy())
    assert acc > 0.7
    # pickled by import path, arguments and weights, as the registry stores it
    clone = Predictor.load(result.predictor.save(Path(__import__("tempfile").mkdtemp()) / "p.pkl"))
    np.testing.assert_array_equal(clone.predict_proba(test), result.predictor.predict_proba(test))


@pytest.mark.parametrize("n, batch, world", [(1301, 128, 2), (1000, 256, 3), (5, 4, 2)])
def test_tensor_batches_give_every_rank_the_same_number_of_batches(n, batch, world):
    x = torch.arange(n, dtype=torch.float32)[:, None]
    y = torch.arange(n)
    train = [TensorBatches(x, y, batch, shuffle=True, seed=0).shard(r, world) for r in range(world)]
    batches = [list(b) for b in train]
    assert len({len(b) for b in batches}) == 1  # DDP's all-reduce needs equal step counts
    assert len({sum(len(yb) for _, yb in b) for b in batches}) == 1
    rows = torch.cat([yb for b in batches for _, yb in b])
    assert set(rows.tolist()) == set(range(n))  # every row, the padding repeats a few
    assert len(rows) - n < world
    # evaluation: sharded without padding, every row exactly once
    val = torch.cat([yb for r in range(world) for _, yb in TensorBatches(x, y, batch, False, 0).shard(r, world)])
    assert sorted(val.tolist()) == list(range(n))


def test_chunks_hold_the_same_batches_as_single_batches():
    x, y = torch.randn(1000, 3), torch.arange(1000)
    single = [yb for _, yb in TensorBatches(x, y, 64, True, 5).shard(0, 1)]
    chunked = [yb for chunk in TensorBatches(x, y, 64, True, 5, chunk=4).shard(0, 1) for _, yb in chunk]
    assert len(single) == len(chunked) == 16
    assert all(torch.equal(a, b) for a, b in zip(single, chunked, strict=True))


def test_a_small_split_is_passed_over_several_times_an_epoch():
    """train.min_epoch_steps: 150 rows in batches of 20 and at least 64 steps an epoch: 9 passes
    (1,350 rows, 68 batches), each a permutation of every row, each reshuffled; a large split keeps one."""
    assert epoch_passes(150, 20, 64) == 9 and epoch_passes(150, 20, None) == 1
    assert epoch_passes(64 * 256, 256, 64) == 1 and epoch_passes(100_000, 256, 64) == 1
    assert epoch_passes(10_000, 256, 64) == 2 and epoch_passes(10_000, 256, 32) == 1
    x, y = torch.randn(150, 3), torch.arange(150)
    ds = TensorBatches(x, y, 20, True, 5, chunk=64, passes=9)
    assert len(ds) == 2  # 68 steps: two chunks
    steps = [yb for chunk in ds.shard(0, 1) for _, yb in chunk]
    assert len(steps) == 68
    passes = torch.cat(steps).view(9, 150)
    assert all(sorted(p.tolist()) == list(range(150)) for p in passes)
    assert len({tuple(p.tolist()) for p in passes}) == 9
    # one pass: the permutations (hence the models) of an epoch are as they were without passes
    one = torch.cat([yb for _, yb in TensorBatches(x, y, 20, True, 5, passes=1).shard(0, 1)])
    assert torch.equal(one, torch.randperm(150, generator=torch.Generator().manual_seed(5)))
    # evaluation rows are never repeated
    assert len(torch.cat([yb for _, yb in TensorBatches(x, y, 20, False, 0, passes=8).shard(0, 1)])) == 150


def test_a_fit_takes_min_epoch_steps_optimizer_steps_an_epoch(setup):
    """The setting reaches the training loop: 1,321 rows take batches of 166 (min_steps_per_epoch: 8
    steps a pass); with min_epoch_steps 64 an epoch is 9 passes (the default MLP takes them as chunks)."""
    cfg, schema, train, val, _ = setup
    tc = cfg.train.model_copy(update={"min_epoch_steps": 64, "max_epochs": 1})
    rank = fit(train, val, schema, tc, progress=False).ranks[0]
    assert rank["train_batches_per_epoch"] >= 64
    batch = small_table_batch(tc.batch_size, len(train), tc.min_steps_per_epoch)
    assert rank["train_rows_per_epoch"] == epoch_passes(len(train), batch, 64) * len(train)
    one = fit(train, val, schema, cfg.train.model_copy(update={"max_epochs": 1}), progress=False).ranks[0]
    assert one["train_rows_per_epoch"] == len(train) and cfg.train.min_epoch_steps is None  # the suite's config


def test_the_built_in_patience_outlasts_a_noisy_validation_curve(setup):
    """The built-in train settings (max_epochs 45, early_stopping_patience 8): a validation loss that
    jumps up for a few epochs before its next low (randhie's counts in benchmarks/real_data.py) is
    trained through to that low, and the fit ends 8 epochs past it with its weights; the suite's and
    the demo's patience 3 stops at the first bump, as the built-in config did before."""
    cfg, schema, train, val, _ = setup
    builtin = load_config([BUILTIN_CONFIG]).train
    assert (builtin.max_epochs, builtin.early_stopping_patience, cfg.train.early_stopping_patience) == (45, 8, 3)
    losses = [5.0, 4.0, 4.5, 4.6, 4.4, 4.2, 4.1, 3.9] + [4.0] * 12 + [3.0] * 30
    args = {"model_class": "tests.training.helpers.ScriptedValLoss", "model_args": {"losses": losses}}
    patient = fit(train, val, schema, builtin.model_copy(update=args), progress=False)
    assert patient.metrics["best_epoch"] == 7 and patient.metrics["epochs"] == 7 + 8 + 1
    assert patient.metrics["val_loss"] == pytest.approx(3.9)
    hasty = fit(train, val, schema, cfg.train.model_copy(update={**args, "max_epochs": 45}), progress=False)
    assert hasty.metrics["best_epoch"] == 1 and hasty.metrics["epochs"] == 1 + 3 + 1


def test_a_refit_learns_the_validation_rows_for_the_chosen_epochs_and_keeps_the_held_out_rows(setup):
    """train.refit: the chosen fit's settings again on the training and validation rows, for its best
    epoch's count of epochs, its last weights; the classifier's calibration then reads only the
    held-out rows (the gate's), which neither fit learnt."""
    cfg, schema, train, val, test = setup
    tc = cfg.train.model_copy(update={"max_epochs": 6})
    chosen = fit(train, val, schema, tc, {"learning_rate": 0.005}, progress=False)
    epochs = int(chosen.metrics["best_epoch"]) + 1
    again, record = refit(chosen, {"learning_rate": 0.005}, train, val, schema, cfg.model_copy(update={"train": tc}))
    assert record == {"refit_rows": float(len(train) + len(val)), "refit_epochs": float(epochs)}
    assert again.metrics["epochs"] == epochs and "best_epoch" not in again.metrics  # no early stopping, last weights
    assert again.ranks[0]["train_rows_per_epoch"] == len(train) + len(val)  # one pass an epoch (the suite's config)
    assert again.predictor.module_args["learning_rate"] == 0.005
    assert not np.allclose(again.predictor.predict_proba(test), chosen.predictor.predict_proba(test))
    data = TrainingData("commit", ["batch"], train, val, test)
    assert calibrate(again.predictor, data, val_learnt=True)["calibration_rows"] == len(test)
    assert calibrate(chosen.predictor, data)["calibration_rows"] == len(val) + len(test)
    assert cfg.train.refit is False and load_config([BUILTIN_CONFIG]).train.refit is True  # off in the suite only


def test_a_crashed_fit_resumes_from_its_last_checkpoint(setup, tmp_path):
    cfg, schema, train, val, _ = setup
    marker, ckpt = tmp_path / "crash", tmp_path / "ckpt"
    tc = cfg.train.model_copy(
        update={"callbacks": [{"class_path": "tests.training.helpers.CrashOnce", "init_args": {"epoch": 2, "marker": str(marker)}}],
                "early_stopping_patience": None}
    )
    with pytest.raises(RuntimeError, match="injected crash at epoch 2"):
        fit(train, val, schema, tc, progress=False, checkpoint_dir=ckpt)
    assert (ckpt / "last.ckpt").exists()
    assert torch.load(ckpt / "last.ckpt", weights_only=False)["epoch"] == 1  # epochs 0 and 1 done

    resumed = fit(train, val, schema, tc, progress=False, checkpoint_dir=ckpt, resume=True)
    assert [e for _, e in epochs_started(marker)] == [0, 1, 2, 2, 3]  # no epoch trained twice
    assert resumed.metrics["start_epoch"] == 2 and resumed.metrics["epochs"] == cfg.train.max_epochs
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]  # the curve survives the crash

    # without resume the folder is cleared and training starts at epoch 0
    fresh = fit(train, val, schema, tc, progress=False, checkpoint_dir=ckpt)
    assert fresh.metrics["start_epoch"] == 0



@pytest.mark.slow
def test_seeded_ddp_runs_give_the_same_metrics(setup):
    cfg, schema, train, val, _ = setup
    tc = cfg.train.model_copy(update={"devices": 2})
    a = fit(train, val, schema, tc, progress=False)
    b = fit(train, val, schema, tc, progress=False)
    assert len(a.ranks) == 2 and a.metrics["val_loss"] == b.metrics["val_loss"]
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
