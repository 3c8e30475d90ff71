"""MLflow tracking and the model registry on Postgres (MLflow's SQLAlchemy
store with a postgresql URI), driven through ratchet's Registry."""

from __future__ import annotations

import mlflow
import pytest

from ratchet.core.settings import Settings
from ratchet.training.registry import Registry

pytestmark = pytest.mark.postgres


@pytest.fixture
def registry(pg_database, tmp_path, monkeypatch):
    monkeypatch.setenv("RATCHET_PROFILE", "cluster")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_database.url())
    monkeypatch.setenv("RATCHET_MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.delenv("RATCHET_MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    settings = Settings(home=tmp_path / "home")
    reg = Registry(settings, model_name="pg-classifier", experiment="pg-experiment")
    yield reg
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_runs_versions_and_aliases_on_postgres(registry, pg_database, tmp_path):
    assert registry.settings.tracking_uri.startswith("postgresql+psycopg://")
    exp_id = registry.activate()  # creates MLflow's schema in the fresh database
    assert mlflow.get_tracking_uri() == pg_database.url()

    # a training run, with a nested trial run, a metric history and an artifact
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({"learning_rate": 0.003, "hidden": "[64, 32]"})
        for step, loss in enumerate([0.9, 0.6, 0.5]):
            mlflow.log_metric("val_loss", loss, step=step)
        with mlflow.start_run(run_name="trial-0", nested=True):
            mlflow.log_metric("val_loss", 0.5)
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        (model_dir / "weights.txt").write_text("not really weights\n")
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    source = f"{run.info.artifact_uri}/model"
    assert run.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())

    # register two versions the way ratchet tags them, move the aliases
    client = registry.client
    client.create_registered_model(registry.model_name)
    v1 = client.create_model_version(registry.model_name, source, run_id=run.info.run_id,
                                     tags={"data_commit": "c0ffee", "config_digest": "abc"})
    v2 = client.create_model_version(registry.model_name, source, run_id=run.info.run_id,
                                     tags={"data_commit": "decade", "config_digest": "abc"})
    registry.set_alias("champion", v1.version)
    registry.set_alias("challenger", v2.version)
    assert registry.aliases() == {"champion": "1", "challenger": "2", "previous": None}
    registry.set_alias("previous", "1")
    registry.set_alias("champion", "2")
    registry.delete_alias("challenger")
    assert registry.aliases() == {"champion": "2", "challenger": None, "previous": "1"}
    assert registry.find_version(data_commit="decade") == "2"
    assert registry.find_version(data_commit="nope") is None
    info = registry.version_info("2")
    assert info["run_id"] == run.info.run_id and info["tags"]["data_commit"] == "decade"
    assert set(info["aliases"]) == {"champion"}

    # read back through a new client: the run, its metric history, the nested run
    fetched = client.get_run(run.info.run_id)
    assert fetched.data.params["learning_rate"] == "0.003"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0.9, 0.6, 0.5]
    children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert [r.info.run_name for r in children] == ["trial-0"]

    # and Postgres holds all of it
    assert pg_database.query("select count(*) from runs") == [(2,)]
    assert sorted(pg_database.query("select alias, version from registered_model_aliases")) == [
        ("champion", 2), ("previous", 1)
    ]
