"""GPU training (marker ``gpu``: left out of ``make test``, skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _schema(df, target: str):
    """The schema of a frame, built here: ``ratchet.data.schema_inference`` imports the profiling
    stack, which a GPU node's image need not have."""
    from ratchet.core.schema import ColumnSpec, Schema, TargetSpec

    columns = []
    for name, s in df.drop(columns=[target]).items():
        if s.dtype == object:
            columns.append(ColumnSpec(name=name, dtype="category", categories=sorted(s.dropna().unique())))
        else:
            columns.append(ColumnSpec(name=name, dtype="int" if s.dtype.kind == "i" else "float"))
    return Schema(columns=columns, target=TargetSpec(name=target, classes=sorted(df[target].unique().tolist())))


@pytest.fixture(scope="module")
def setup():
    from ratchet.core.config import load_config
    from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
    from ratchet.training.window import split_frame
    from tests.conftest import CONFIG_FILES

    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 3000, seed=3)
    schema = _schema(df, DEMO_TARGET)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    return cfg, schema, train, val, test


def _accuracy(result, test, schema) -> float:
    return float(np.mean(np.array(result.predictor.predict(test)) == test[schema.target.name].to_numpy()))


def test_single_gpu_fit_of_the_default_model(setup):
    from ratchet.training.model.fit import fit

    cfg, schema, train, val, test = setup
    result = fit(train, val, schema, cfg.train.model_copy(update={"accelerator": "gpu", "devices": 1}), progress=False)
    assert result.ranks[0]["device"].startswith("cuda")
    assert next(result.predictor.module.parameters()).device.type == "cpu"  # served on CPU
    assert _accuracy(result, test, schema) > 0.75


def test_the_config_for_a_gpu_node_uses_every_gpu(setup):
    """accelerator=gpu, devices=auto: one process on a one-GPU node, DDP (one rank per GPU) on more."""
    from ratchet.training.model.fit import fit

    cfg, schema, train, val, test = setup
    result = fit(train, val, schema, cfg.train.model_copy(update={"accelerator": "gpu", "devices": "auto"}),
                 progress=False)
    n = torch.cuda.device_count()
    assert len(result.ranks) == n and {r["world_size"] for r in result.ranks} == {n}
    assert {r["device"] for r in result.ranks} == {f"cuda:{i}" for i in range(n)}
    assert _accuracy(result, test, schema) > 0.7


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_ddp_on_two_gpus(setup):
    from ratchet.training.model.fit import fit

    cfg, schema, train, val, test = setup
    result = fit(train, val, schema, cfg.train.model_copy(update={"accelerator": "gpu", "devices": 2}), progress=False)
    assert [r["device"] for r in result.ranks] == ["cuda:0", "cuda:1"]
    assert result.ranks[0]["train_batches_per_epoch"] == result.ranks[1]["train_batches_per_epoch"]
    assert _accuracy(result, test, schema) > 0.7
