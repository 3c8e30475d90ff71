"""The study's figures and table for the parent run: importances need two complete trials."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from ratchet.training.model.tune import study_figures, trials_table

DISTS = {"learning_rate": FloatDistribution(1e-3, 1e-1, log=True), "hidden": CategoricalDistribution([0, 1, 2])}


def _study(values: list[float | None]) -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    for i, v in enumerate(values):
        state = optuna.trial.TrialState.COMPLETE if v is not None else optuna.trial.TrialState.PRUNED
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": 10 ** (-3 + i * 0.5), "hidden": i % 3}, distributions=DISTS,
                value=v, state=state, intermediate_values={0: 1.0} if v is None else {},
            )
        )
    return study


def test_history_and_importances_with_enough_trials():
    import matplotlib.pyplot as plt

    study = _study([0.6, 0.4, None, 0.5])
    figures, skipped = study_figures(study)
    assert set(figures) == {"optuna_history.png", "optuna_importances.png"} and not skipped
    assert all(f.axes for f in figures.values())
    rows = trials_table(study)
    assert [r["state"] for r in rows] == ["complete", "complete", "pruned", "complete"]
    assert rows[1]["value"] == 0.4 and rows[2]["value"] is None
    for f in figures.values():
        plt.close(f)


def test_importances_are_skipped_with_one_complete_trial_and_nothing_with_none():
    figures, skipped = study_figures(_study([0.6, None]))
    assert set(figures) == {"optuna_history.png"}
    assert "need 2 or more" in skipped["optuna_importances.png"]
    figures, skipped = study_figures(_study([None]))
    assert figures == {} and set(skipped) == {"optuna_history.png", "optuna_importances.png"}


def _failed(study: optuna.Study, lr: float, resume_of: int | None = None) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={"learning_rate": lr, "hidden": 1}, distributions=DISTS, state=optuna.trial.TrialState.FAIL,
            user_attrs={} if resume_of is None else {"resume_of": resume_of},
        )
    )


def test_a_failed_trial_is_queued_again_once_under_its_first_number():
    from ratchet.training.model.tune import requeue_failed

    study = _study([0.5])
    _failed(study, 0.01)  # trial 1
    assert requeue_failed(study) == [1]
    (waiting,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.system_attrs["fixed_params"] == study.trials[1].params  # how Optuna queues params
    assert waiting.user_attrs == {"resume_of": 1}
    assert requeue_failed(study) == []  # its retry is queued already


def test_a_trial_that_keeps_failing_is_given_up_after_three_attempts():
    from ratchet.training.model.tune import requeue_failed

    study = optuna.create_study()
    _failed(study, 0.01)
    _failed(study, 0.01, resume_of=0)
    assert requeue_failed(study) == [0]
    study = optuna.create_study()
    for resume_of in (None, 0, 0):
        _failed(study, 0.01, resume_of)
    assert requeue_failed(study) == []
