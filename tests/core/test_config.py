from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.core.config import ConfigError, load_config
from tests.conftest import CONFIG_FILES


def test_real_config_plus_test_override():
    base = load_config([Path(CONFIG_FILES[0])])
    merged = load_config([Path(f) for f in CONFIG_FILES])
    assert merged.tune.trials < base.tune.trials
    # keys the override does not name keep the real config's values
    # (the override names the search's family, learning rate and widths: the suite keeps the plain MLP)
    assert merged.tune.search_space["family"].choices == ["mlp"] and len(base.tune.search_space["family"].choices) == 3
    for name in ("dropout", "batch_size", "k", "n_bins", "d_embedding"):
        assert merged.tune.search_space[name] == base.tune.search_space[name]
    assert merged.train.model_class == base.train.model_class


def test_digest_changes_with_config():
    a = load_config([Path(CONFIG_FILES[0])])
    b = load_config([Path(CONFIG_FILES[0])], {"train": {"max_epochs": 3}})
    assert a.digest() != b.digest()
    assert a.digest() == load_config([Path(CONFIG_FILES[0])]).digest()


def test_bad_config_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_epochs: 0\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config([bad])
    text = str(e.value)
    assert "max_epochs" in text and "learning_rat" in text
    assert str(bad) in text and "\n" not in text  # one line, naming the file


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config([tmp_path / "nope.yaml"])


def test_the_canary_steps_earlier_names_still_read(tmp_path):
    # "window" means the batches a model trains on; the canary's step duration was window_s
    older = tmp_path / "older.yaml"
    older.write_text("canary:\n  window_s: 7\n  max_window_s: 70\n")
    cfg = load_config([Path(CONFIG_FILES[0]), older])
    assert (cfg.canary.step_s, cfg.canary.max_step_s) == (7, 70)  # the project's file wins over the built-in
    assert load_config([Path(CONFIG_FILES[0])], {"canary": {"step_s": 9}}).canary.step_s == 9
