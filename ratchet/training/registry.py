"""MLflow tracking and the model registry: logging, registering, aliases, loading.

Nothing connects at import time: a ``Registry`` is built from settings, so tests
point it at a SQLite file in a temporary folder.

Nor is MLflow imported then: ``import mlflow`` and its SQL store cost seconds (alembic, the
genai modules), more than ``ratchet status`` should take. Reading an alias from a local SQLite
tracking database is one query on MLflow's ``registered_model_aliases`` table (stdlib
``sqlite3``, read-only); everything else, and any other store, goes through MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import tempfile
from functools import cache, cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ratchet.core.settings import Settings
from ratchet.training.versions import VersionLineage, VersionMarks

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the model stack (torch, Lightning) loads only where a model is touched,
    # so an emergency rollback does not wait for it; MLflow and pandas where they are used
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature

    from ratchet.training.model.fit import Predictor

ALIASES = ("champion", "challenger", "previous")
_CREATED: set[str] = set()  # SQLite tracking databases this process knows are created


def ensure_sqlite_store(tracking_uri: str, artifact_root: str) -> None:
    """Create (migrate) a local SQLite tracking database once, under a file lock.

    MLflow creates its tables on first use by running alembic. Two processes doing it at
    once (the service's reload and an ingest's training, right after ``ratchet up``) leave
    ``table _alembic_tmp_... already exists`` and a database no one can use. So the first
    process creates it under ``<db>.lock`` and leaves ``<db>.ready``; the others wait on the
    lock, or skip it once the marker is there. Other stores (Postgres, a server) migrate
    themselves or are migrated by their operator."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri in _CREATED:
        return
    db = Path(unquote(tracking_uri[len("sqlite:///"):]))
    ready = db.with_name(db.name + ".ready")
    if not ready.exists():
        import fcntl

        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.with_name(db.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not ready.exists():
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                SqlAlchemyStore(tracking_uri, artifact_root)  # creates or upgrades the tables
                ready.touch()
    _CREATED.add(tracking_uri)


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
        import mlflow

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
        from mlflow import MlflowClient

        self._ensure_store()
        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)

    def _ensure_store(self) -> None:
        if self.settings.tracking_uri.startswith("sqlite:///"):  # artifact_root may need a cluster's settings
            ensure_sqlite_store(self.settings.tracking_uri, self.settings.artifact_root)

    def use_stores(self) -> None:
        """Point the mlflow module's globals (``models:/`` URIs, runs) at this home."""
        import mlflow

        self._ensure_store()
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)

    # -- logging and registering -------------------------------------------------------
    def log_predictor(self, predictor: Predictor, example: pd.DataFrame) -> str:
        """Log the predictor as a pyfunc in the active run; return its model URI."""
        import mlflow

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
        import mlflow

        self.use_stores()
        mv = mlflow.register_model(model_uri, self.model_name, tags={k: str(v) for k, v in tags.items()})
        return str(mv.version)

    def find_version(self, **tags: str) -> str | None:
        """The version carrying all these tags (used to never register a model twice)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{self.model_name}'")
        except MlflowException:
            return None
        for mv in versions:
            if all(mv.tags.get(k) == str(v) for k, v in tags.items()):
                return str(mv.version)
        return None

    def lineage(self, version: str) -> VersionLineage:
        """Where ``version`` came from (its registration tags); MLflow's error when there is no such version."""
        return VersionLineage.from_tags(self.client.get_model_version(self.model_name, str(version)).tags)

    def marks(self, version: str) -> VersionMarks:
        """What later stages wrote on ``version`` (approval, canary, gc, concept drift)."""
        return VersionMarks.from_tags(self.client.get_model_version(self.model_name, str(version)).tags)

    def mark(self, version: str, marks: VersionMarks) -> None:
        """Write the fields set in ``marks`` on ``version``."""
        for key, value in marks.to_tags().items():
            self.client.set_model_version_tag(self.model_name, str(version), key, value)

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
        local = self._sqlite_aliases()
        if local is not None:
            return local.get(alias)
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def aliases(self) -> dict[str, str | None]:
        local = self._sqlite_aliases()
        if local is not None:
            return {a: local.get(a) for a in ALIASES}
        return {a: self.alias(a) for a in ALIASES}

    def _sqlite_aliases(self) -> dict[str, str] | None:
        """Every alias of the model, read straight from a local SQLite tracking database
        (what ``get_model_version_by_alias`` reads, without importing MLflow); None when the
        store is not such a file or its tables are not the ones expected (then MLflow asks)."""
        uri = self.settings.tracking_uri
        if not uri.startswith("sqlite:///"):
            return None
        path = Path(unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0]).resolve()  # as SQLAlchemy reads it
        if not path.is_file():
            return {}  # no database yet: no model, no alias
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
                columns = {row[1] for row in db.execute("PRAGMA table_info(registered_model_aliases)")}
                if not columns:  # no such table: a database another process is still creating, so no
                    return {}    # alias yet (asking MLflow would run its migrations a second time, at once)
                if not {"name", "alias", "version"} <= columns:
                    return None  # an older or unmigrated schema: leave it to MLflow
                where = "name = ? AND workspace = 'default'" if "workspace" in columns else "name = ?"
                rows = db.execute(f"SELECT alias, version FROM registered_model_aliases WHERE {where}",  # noqa: S608
                                  (self.model_name,)).fetchall()
        except sqlite3.Error:
            return None
        return {alias: str(version) for alias, version in rows}

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        from mlflow.exceptions import MlflowException

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
        import mlflow

        self.use_stores()
        uri = f"models:/{self.model_name}/{version}"
        # suppress_warnings: MLflow's own check of the model's requirements maps every installed
        # package to its modules first (importlib_metadata.packages_distributions over ~27,000 files:
        # 1.8-3.7 s a load, paid again by every forked flow run; 4.9 s of the release gate's 5 s
        # here). requirement_mismatches() checks the same requirements by name, in milliseconds.
        pyfunc = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
        for mismatch in requirement_mismatches(uri):
            log.warning("model version %s was logged with %s", version, mismatch)
        predictor: Predictor = pyfunc.unwrap_python_model().predictor
        predictor.version = str(version)
        predictor.prior_weights = self.prior_weights(str(version), predictor.classes)
        return predictor

    def prior_weights(self, version: str, classes: list) -> Any:
        """Per class pi_new / pi_train when a labelled batch's prior shift is marked on ``version``
        (``ratchet.core.prior_shift``); None: its probabilities as trained."""
        from ratchet.core.prior_shift import loads, prior_weights

        if not classes:
            return None
        tags = self.version_info(version)["tags"]
        target = loads(VersionMarks.from_tags(tags).prior_shares)
        counts = VersionLineage.from_tags(tags).class_counts
        if not target or not counts or set(map(str, classes)) - set(target):
            return None
        return prior_weights(counts, target, classes)


@cache
def requirement_mismatches(model_uri: str) -> tuple[str, ...]:
    """The model's pip requirements this interpreter does not satisfy: what MLflow warns of at
    load, found by looking each requirement up by name (``importlib.metadata.version``), where
    MLflow first maps every installed distribution to its modules. Requirements that are not a
    name and version specifiers (paths, URLs) are skipped, as MLflow skips them. Once per
    model and process: a registered version's artifacts never change."""
    import mlflow
    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    try:  # the one file, as MLflow's docs advise (get_model_dependencies downloads every artifact)
        lines = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt")).read_text().splitlines()
    except (OSError, mlflow.exceptions.MlflowException):
        return ()  # a model logged without requirements: nothing to check, as MLflow checks nothing
    for line in lines:
        try:
            req = Requirement(line.strip())
        except InvalidRequirement:
            continue
        if req.marker and not req.marker.evaluate():
            continue
        try:
            installed = pkg_version(req.name)
        except PackageNotFoundError:
            found.append(f"{req} (not installed here)")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            found.append(f"{req} (installed here: {installed})")
    return tuple(found)


def signature_for(predictor: Predictor, example: pd.DataFrame) -> ModelSignature:
    """Inputs by name with any type: the preprocessing inside the model types them.

    MLflow's own enforcement cannot serve tabular users well here: an int column
    in the signature rejects a row with a missing value, and a double column
    rejects int64 input as an unsafe conversion.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec
    from mlflow.types.schema import Schema as MlflowSchema

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
