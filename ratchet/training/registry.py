"""MLflow tracking and the model registry: logging, registering, aliases, loading.

Nothing connects at import time: a ``Registry`` is built from settings, so tests
point it at a SQLite file in a temporary folder.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache, cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec
from mlflow.types.schema import Schema as MlflowSchema

from ratchet.core.settings import Settings

if TYPE_CHECKING:  # the model stack (torch, Lightning) loads only where a model is touched,
    # so an emergency rollback does not wait for it
    from ratchet.training.model.fit import Predictor

ALIASES = ("champion", "challenger", "previous")


@cache
def code_version() -> str:
    """The git commit of the code (``-dirty`` with local changes), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        try:
            return f"ratchet=={pkg_version('ratchet')}"
        except PackageNotFoundError:
            return "unknown"


class Registry:
    def __init__(self, settings: Settings, model_name: str, experiment: str):
        self.settings = settings
        self.model_name = model_name
        self.experiment = experiment

    # -- connection ---------------------------------------------------------------
    def activate(self) -> str:
        """Point the mlflow module at this home's stores and experiment; return its id."""
        self.use_stores()
        exp = mlflow.get_experiment_by_name(self.experiment)
        if exp is None:
            exp_id = mlflow.create_experiment(
                self.experiment, artifact_location=f"{self.settings.artifact_root}/{self.experiment}"
            )
        else:
            exp_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id

    @cached_property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)

    def use_stores(self) -> None:
        """Point the mlflow module's globals (``models:/`` URIs, runs) at this home."""
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)

    # -- logging and registering -------------------------------------------------------
    def log_predictor(self, predictor: Predictor, example: pd.DataFrame) -> str:
        """Log the predictor as a pyfunc in the active run; return its model URI."""
        from ratchet.training.model.pyfunc import RatchetPyfunc

        example = example.head(5).reset_index(drop=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = predictor.save(Path(tmp) / "predictor.pkl")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RatchetPyfunc(),
                artifacts={"predictor": str(path)},
                signature=signature_for(predictor, example),
                input_example=example,
                # the serving env needs ratchet itself; pinning avoids MLflow's slow
                # requirement inference, which imports the model in a subprocess
                pip_requirements=[f"ratchet=={_own_version()}"],
            )
        return info.model_uri

    def register(self, model_uri: str, tags: dict[str, str]) -> str:
        mv = mlflow.register_model(model_uri, self.model_name, tags={k: str(v) for k, v in tags.items()})
        return str(mv.version)

    def find_version(self, **tags: str) -> str | None:
        """The version carrying all these tags (used to never register a model twice)."""
        try:
            versions = self.client.search_model_versions(f"name = '{self.model_name}'")
        except MlflowException:
            return None
        for mv in versions:
            if all(mv.tags.get(k) == str(v) for k, v in tags.items()):
                return str(mv.version)
        return None

    def version_info(self, version: str) -> dict[str, Any]:
        mv = self.client.get_model_version(self.model_name, str(version))
        return {
            "version": str(mv.version),
            "run_id": mv.run_id,
            "tags": dict(mv.tags),
            "aliases": list(mv.aliases),
            "created_at": mv.creation_timestamp,
            "source": mv.source,
        }

    # -- aliases ---------------------------------------------------------------------
    def alias(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def aliases(self) -> dict[str, str | None]:
        return {a: self.alias(a) for a in ALIASES}

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(self.model_name, alias)
        except MlflowException:
            pass

    # -- loading ---------------------------------------------------------------------
    def load_predictor(self, ref: str) -> Predictor:
        """Load by version number or alias; the predictor carries its version."""
        version = ref if str(ref).isdigit() else self.alias(ref)
        if version is None:
            raise LookupError(f"model {self.model_name!r} has no version with alias {ref!r}")
        self.use_stores()
        pyfunc = mlflow.pyfunc.load_model(f"models:/{self.model_name}/{version}")
        predictor: Predictor = pyfunc.unwrap_python_model().predictor
        predictor.version = str(version)
        return predictor


def signature_for(predictor: Predictor, example: pd.DataFrame) -> ModelSignature:
    """Inputs by name with any type: the preprocessing inside the model types them.

    MLflow's own enforcement cannot serve tabular users well here: an int column
    in the signature rejects a row with a missing value, and a double column
    rejects int64 input as an unsafe conversion.
    """
    from ratchet.training.model.pyfunc import RatchetPyfunc

    inputs = MlflowSchema([ColSpec(AnyType(), name) for name in predictor.schema.feature_names])
    outputs = infer_signature(example, RatchetPyfunc._frame(predictor, example)).outputs
    return ModelSignature(inputs=inputs, outputs=outputs)


class RegistryProvider:
    """``ratchet.serving`` ModelProvider backed by the registry's aliases."""

    def __init__(self, registry: Registry):
        self.registry = registry
        registry.use_stores()

    def versions(self) -> dict[str, str | None]:
        return {"champion": self.registry.alias("champion"), "challenger": self.registry.alias("challenger")}

    def load(self, alias: str) -> Predictor | None:
        if self.registry.alias(alias) is None:
            return None
        return self.registry.load_predictor(alias)


def _own_version() -> str:
    try:
        return pkg_version("ratchet")
    except PackageNotFoundError:
        return "0.1.0"
