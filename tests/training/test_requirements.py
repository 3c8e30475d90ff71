"""A loaded model's requirements against this interpreter: what MLflow's load warns of, by name."""

from __future__ import annotations

from importlib.metadata import version

import mlflow
import mlflow.pyfunc
import pytest

from ratchet.training.registry import requirement_mismatches


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0] * len(model_input)


@pytest.fixture
def stores(tmp_path):
    """MLflow on SQLite in a temporary folder; the process's URIs as they were afterwards."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_requirements_this_interpreter_misses_are_named_and_the_rest_pass(tmp_path, stores):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("requirements")
    numpy_here = version("numpy")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="m", python_model=_Constant(), registered_model_name="reqs",
            pip_requirements=[f"numpy=={numpy_here}", "pandas<99", "numpy-not-a-real-package==1.0", "scipy==0.0.1",
                              "torch; python_version < '3'"],  # a marker that excludes it here: not checked
        )
    found = requirement_mismatches(f"models:/reqs/{info.registered_model_version}")
    assert len(found) == 2, found
    assert any("numpy-not-a-real-package" in f and "not installed here" in f for f in found)
    assert any(f.startswith("scipy==0.0.1") and f"installed here: {version('scipy')}" in f for f in found)
