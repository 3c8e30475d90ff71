"""The model families: each trains through ratchet's fit, the search draws a family's own parameters
only for it, a new study starts from the configured first trial, the fit keeps its best epoch."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import optuna
import pytest

from ratchet.core.config import ConfigError, load_config
from ratchet.training.model.families import FAMILIES, quantile_bins
from ratchet.training.model.fit import fit
from ratchet.training.model.tune import applicable, encode, search_space, suggest
from tests.conftest import CONFIG_FILES


@pytest.fixture(scope="module")
def fitted(setup):
    cfg, schema, train, val, test = setup
    train_cfg = cfg.train.model_copy(update={"max_epochs": 3})
    space = load_config(CONFIG_FILES[:1]).tune.search_space  # the built-in one, with the families' parameters
    out = {}
    for fam in FAMILIES:
        params = applicable({"family": fam, "hidden": [32, 32], "k": 4, "n_bins": 8, "d_embedding": 4}, space)
        out[fam] = fit(train, val, schema, train_cfg, params, progress=False)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_keeps_its_best_epoch_and_round_trips(setup, fitted, family):
    _, schema, _, _, test = setup
    result = fitted[family]
    p = result.predictor
    assert p.module_class == FAMILIES[family]
    proba = p.predict_proba(test)
    assert proba.shape == (len(test), len(schema.target.classes)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    y = test[schema.target.name].astype(str).map({str(c): i for i, c in enumerate(p.classes)}).to_numpy()
    assert (proba.argmax(axis=1) == y).mean() > 0.6  # learnt something (the majority class is ~50 %)
    losses = [row["val_loss"] for row in result.history]
    assert result.metrics["val_loss"] == pytest.approx(min(losses))  # the best epoch's model, not the last
    again = pickle.loads(pickle.dumps(p))
    np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-6)


def test_a_family_draws_only_its_own_parameters():
    cfg = load_config(CONFIG_FILES[:1])  # the built-in config: the families' search space
    space = search_space(cfg)
    base = {"learning_rate": 0.003, "dropout": 0.1, "hidden": 0, "batch_size": 256}
    mlp = suggest(optuna.trial.FixedTrial({**base, "family": "mlp"}), space)
    assert mlp["family"] == "mlp" and not {"k", "d_embedding", "n_bins"} & set(mlp)
    ple = suggest(optuna.trial.FixedTrial({**base, "family": "mlp_ple", "d_embedding": 8, "n_bins": 16}), space)
    assert ple["n_bins"] == 16 and "k" not in ple
    tabm = suggest(optuna.trial.FixedTrial({**base, "family": "tabm", "d_embedding": 8, "n_bins": 16, "k": 4}), space)
    assert tabm["k"] == 4 and tabm["hidden"] == space["hidden"].choices[0]
    first = encode(cfg.tune.first_trial, space)  # a list choice is stored by its index
    assert space["hidden"].choices[first["hidden"]] == cfg.tune.first_trial["hidden"]


def test_a_module_of_the_users_own_is_tuned_without_the_family():
    cfg = load_config(CONFIG_FILES[:1])
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"model_class": "tests.training.helpers.TinyLogReg"})})
    space = search_space(cfg)
    assert "family" not in space and not {"k", "d_embedding", "n_bins"} & set(space)


def test_a_bad_first_trial_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tune:\n  first_trial: {family: xgboost}\n")
    with pytest.raises(ConfigError, match="xgboost"):
        load_config([*CONFIG_FILES[:1], str(bad)])
    bad.write_text("tune:\n  first_trial: {depth: 3}\n")
    with pytest.raises(ConfigError, match="depth"):
        load_config([*CONFIG_FILES[:1], str(bad)])


def test_the_bins_are_quantiles_of_the_training_rows_and_a_constant_column_gets_one():
    import torch

    x = torch.tensor(np.c_[np.arange(100.0), np.full(100, 3.0), np.r_[np.zeros(50), np.ones(50)]], dtype=torch.float32)
    bins = quantile_bins(x, 4)
    assert bins[0] == pytest.approx([0.0, 24.75, 49.5, 74.25, 99.0])
    assert bins[1] == [2.0, 4.0]  # constant: one bin around it
    assert bins[2] == [0.0, 0.5, 1.0]  # a flag: the median between its two values
    assert copy.deepcopy(bins) == bins and all(isinstance(v, float) for b in bins for v in b)  # plain lists


def test_the_first_trial_is_kept_unless_another_is_better_beyond_the_noise(setup, fitted):
    """select_trial: a lower validation loss within the noise of the validation rows does not replace
    the first trial (the measured default); a clearly better model does; without z the minimum wins."""
    from ratchet.training.model.fit import FitResult
    from ratchet.training.model.tune import row_losses, select_trial

    cfg, schema, train, val, _ = setup
    untrained = fit(train, val, schema, cfg.train.model_copy(update={"max_epochs": 1}),
                    {"family": "mlp", "learning_rate": 1e-6}, progress=False)
    good = fitted["mlp"]
    assert row_losses(untrained.predictor, val).mean() > row_losses(good.predictor, val).mean() + 0.1
    study = optuna.create_study()
    for value in (0.50, 0.49, 0.40):
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={}))
    first, close, far = study.get_trials()
    models = {first.number: good, close.number: good, far.number: untrained}

    def model_of(t) -> FitResult:
        return models[t.number]

    # trials 0 and 1 give the same model: a lower reported loss with no per-row difference keeps trial 0
    chosen, model, kept = select_trial([first, close], first, model_of, val, 2.0)
    assert chosen.number == 0 and model is good and kept
    chosen, _, kept = select_trial([first, close], first, model_of, val, None)
    assert chosen.number == 1 and not kept
    # the first trial untrained, the other learnt: the difference is far beyond its noise
    models[first.number], models[far.number] = untrained, good
    chosen, model, kept = select_trial([first, far], first, model_of, val, 2.0)
    assert chosen.number == far.number and model is good and not kept
