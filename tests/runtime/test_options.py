"""RunOptions.merged: a flow parameter that stands for a setting (the training window the UI
offers) is merged over the options' own overrides, key by key."""

from __future__ import annotations

from ratchet.runtime.options import RunOptions
from tests.conftest import CONFIG_FILES


def test_merged_keeps_the_other_overrides_and_wins_on_its_keys(tmp_path):
    options = RunOptions(config_files=CONFIG_FILES, home=str(tmp_path),
                         overrides={"train": {"max_epochs": 2, "window": "all"}, "tune": {"trials": 1}})
    train = options.merged({"train": {"window": "since_drift"}}).context().cfg.train
    assert (train.window, train.max_epochs) == ("since_drift", 2)
    assert options.merged(None) is options and options.overrides["train"]["window"] == "all"  # not changed
