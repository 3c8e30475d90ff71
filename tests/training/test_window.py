"""Training windows: all batches, the last K, or the batches since the latest drift onset."""

from __future__ import annotations

import pytest

from ratchet.core.schema import dump_schema
from ratchet.data.infer import infer_schema
from ratchet.demo.synthetic import DEMO_TARGET, generate_batch
from ratchet.runtime.context import load_context
from ratchet.training.window import training_data
from tests.conftest import CONFIG_FILES
from tests.training.helpers import publish_batches


@pytest.fixture
def drifted_home(home):
    """Four clean batches, then two after data and concept drift, published through ingest."""
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 600, seed=5, data_drift_at=4, concept_drift_at=4) for i in range(6)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    folder = home / "incoming"
    folder.mkdir(parents=True)
    publish_batches(ctx, frames, folder)
    return home


def _window(home, **train):
    ctx = load_context(CONFIG_FILES, overrides={"train": train}, home=str(home))
    return training_data(ctx.repo, "main", ctx.cfg)


def test_since_drift_trains_on_the_batches_after_the_onset_only(drifted_home):
    data = _window(drifted_home)  # the shipped config's rule
    assert len(data.batches) == 2 and data.rule == "since drift onset: 2 of the last 6"
    everything = _window(drifted_home, window="all")
    assert len(everything.batches) == 6 and everything.rule == "all"
    assert data.batches == everything.batches[-2:]
    # the held-out rows the gate scores come from the same window
    assert len(data.train) + len(data.val) + len(data.test) == 2 * 600


def test_since_drift_is_capped_by_window_batches_and_last_k_is_still_there(drifted_home):
    capped = _window(drifted_home, window="since_drift", window_batches=1)
    assert len(capped.batches) == 1
    last = _window(drifted_home, window="last", window_batches=3)
    assert len(last.batches) == 3 and last.rule == "last 3"


def test_since_drift_without_drift_takes_every_batch(home):
    ctx = load_context(CONFIG_FILES, home=str(home))
    frames = [generate_batch(i, 600, seed=5) for i in range(4)]
    dump_schema(infer_schema(frames[0], DEMO_TARGET), ctx.settings.schema_path)
    (home / "incoming").mkdir(parents=True)
    publish_batches(ctx, frames, home / "incoming")
    data = _window(home, window="since_drift")
    assert len(data.batches) == 4 and data.rule == "since drift onset: 4 of the last 4"


def test_an_unknown_window_rule_is_named_in_the_error(home):
    with pytest.raises(ValueError, match="window"):
        load_context(CONFIG_FILES, overrides={"train": {"window": "yesterday"}}, home=str(home))
