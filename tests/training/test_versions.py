"""The registry tags of a version have one owner: what is written is what is read back."""

from ratchet.training.versions import VersionLineage, VersionMarks


def test_lineage_round_trips_through_its_tags():
    made = VersionLineage(
        data_commit="c0ffee", window_batches=3, window_rule="since drift onset", holdout_batches=1,
        code_version="abc123", config_hash="f00d", optuna_study="ratchet-c0ffee-1", optuna_trial=4,
        run_id="r1", test_metrics={"test_accuracy": 0.875, "test_f1": 0.5},
    )
    tags = made.to_tags()
    assert all(isinstance(v, str) for v in tags.values())
    back = VersionLineage.from_tags(tags)
    # test_f1 is not a tagged metric: it stays in the run, not on the version
    assert back == VersionLineage(**{**made.__dict__, "test_metrics": {"test_accuracy": 0.875}})
    assert back.scored_batches == 1
    assert VersionLineage(data_commit="c", window_batches=5).scored_batches == 5


def test_the_window_choice_and_feature_importance_round_trip():
    candidates = ({"name": "newest 1", "batches": 1, "loss": 0.41, "se": 0.02},
                  {"name": "all", "batches": 6, "loss": 0.62, "se": 0.03})
    made = VersionLineage(data_commit="c", window_batches=1, window_candidates=candidates,
                          window_choice="lowest proxy loss", feature_importance={"age": 0.25, "noise": -0.001})
    back = VersionLineage.from_tags(made.to_tags())
    assert back.window_candidates == candidates and back.window_choice == "lowest proxy loss"
    assert back.feature_importance == {"age": 0.25, "noise": -0.001}
    # many features: the largest are tagged and the tag stays within MLflow's 5000 characters
    wide = VersionLineage(data_commit="c", feature_importance={f"feature_{i:04d}": i / 1e4 for i in range(1000)})
    tag = wide.to_tags()["feature_importance"]
    assert len(tag) <= 5000 and "feature_0999" in tag and "feature_0000" not in tag


def test_identity_and_run_tags_leave_out_what_is_unknown():
    made = VersionLineage(data_commit="c", window_batches=2, config_hash="h", code_version="v", trigger="manual",
                          data_window="b1 .. b2", optuna_study="s")
    assert made.identity() == {"data_commit": "c", "window_batches": "2", "config_hash": "h", "code_version": "v"}
    assert made.run_tags() == {"data_commit": "c", "data_window": "b1 .. b2", "window_batches": "2",
                               "config_hash": "h", "code_version": "v", "optuna_study": "s", "trigger": "manual"}
    assert "holdout_batches" not in made.to_tags()  # no hold-out apart from the window


def test_marks_round_trip_and_unset_fields_are_not_written():
    marks = VersionMarks(approval="approved", approval_by="ada", approval_comment="x" * 6000,
                         artifacts_removed=True, concept_live_onset=1700000000.5, concept_last_score=0.81234)
    tags = marks.to_tags()
    assert tags["gc"] == "artifacts_removed" and len(tags["approval_comment"]) == 5000  # MLflow's limit
    assert "canary" not in tags and "concept_onset" not in tags
    back = VersionMarks.from_tags(tags)
    assert back.artifacts_removed and back.approval_by == "ada" and back.concept_live_onset == 1700000000.5
    assert back.concept_last_score == 0.8123
    assert VersionMarks.from_tags({}) == VersionMarks()
