"""Shared fixtures of the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.core.config import load_config
from ratchet.data.schema_inference import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.training.window import split_frame
from tests.conftest import CONFIG_FILES


@pytest.fixture(scope="module")
def setup():
    """The test config, and 2,000 synthetic rows split into train/validation/test."""
    cfg = load_config([Path(f) for f in CONFIG_FILES])
    df = generate_batch(0, 2000, seed=3)
    schema = infer_schema(df, DEMO_TARGET)
    train, val, test = split_frame(df, 0.15, 0.2, seed=1)
    return cfg, schema, train, val, test
