"""Where things live: the ``local`` and ``cluster`` profiles.

``RATCHET_PROFILE`` picks where the stores are; nothing else changes between
the two, so the same flows and tasks run on a laptop and on a cluster.

``local`` (the default)
    Every store is embedded in one home folder, ``RATCHET_HOME`` (default
    ``./.ratchet``): Prefect's database (an ephemeral server per run), MLflow's
    tracking and registry database (SQLite) and its artifacts, the embedded
    data repository, Optuna's study storage (SQLite), the promotion ledger
    (SQLite), serving state and reports.

``cluster``
    The stores are servers named by the environment, and a missing one is an
    error (naming the variable to set), never a silent fall back to a SQLite
    file inside a pod that will be gone tomorrow:

    * MLflow: ``MLFLOW_TRACKING_URI`` (the MLflow server, e.g.
      ``http://mlflow:5000``, itself on Postgres and S3-compatible storage);
      artifacts go through the server (``mlflow-artifacts:``) unless
      ``RATCHET_MLFLOW_ARTIFACT_ROOT`` names a bucket (``s3://...``, then with
      ``MLFLOW_S3_ENDPOINT_URL`` and AWS credentials).
    * Optuna and the promotion ledger: ``RATCHET_POSTGRES_URL`` (one Postgres
      database for ratchet's own tables; ``postgres://``, ``postgresql://``
      and async drivers become ``postgresql+psycopg://``).
    * Prefect: ``PREFECT_API_URL`` (the Prefect server, itself on Postgres).
      A worker sets it in every flow run it starts.
    * Data: lakeFS (``LAKEFS_ENDPOINT``, ``LAKEFS_ACCESS_KEY_ID``,
      ``LAKEFS_SECRET_ACCESS_KEY``, ``LAKEFS_STORAGE_NAMESPACE``), selected by
      the profile's config overlay ``ratchet/configs/cluster.yaml`` (``data.backend:
      lakefs``), shipped in the package and merged over the built-in defaults
      whenever ``RATCHET_PROFILE=cluster``.

``RATCHET_PREFECT_HOST`` is where the home's Prefect server listens (127.0.0.1; any other
address needs ``PREFECT_SERVER_API_AUTH_STRING``, which ``prefect_env`` then gives its clients).

In both profiles ``RATCHET_MLFLOW_TRACKING_URI``, ``RATCHET_MLFLOW_ARTIFACT_ROOT``,
``RATCHET_OPTUNA_STORAGE`` and ``RATCHET_LEDGER_URL`` override one store each.
The home folder still holds the schema, reports, serving state and checkpoints
in the cluster profile (mount the schema there, e.g. from a ConfigMap).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ratchet.core.files import private_dir

Profile = Literal["local", "cluster"]
PROFILES: tuple[str, ...] = ("local", "cluster")

# the built-in config (ratchet.yaml: every setting) and the profiles' overlays, shipped as
# package data: an installed ratchet finds them wherever it runs
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# the data backend each profile's config overlay (ratchet/configs/<profile>.yaml) selects
PROFILE_DATA_BACKEND = {"local": "embedded", "cluster": "lakefs"}


class ProfileError(RuntimeError):
    """A store the profile needs is not configured."""


class HomeError(OSError):
    """The home folder (``RATCHET_HOME``, ``--home``) is not a folder ratchet can use."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RATCHET_", extra="ignore", populate_by_name=True)

    profile: Profile = "local"
    home: Path = Field(default=Path(".ratchet"))
    mlflow_tracking_uri: str | None = None  # default: sqlite in home (local), MLFLOW_TRACKING_URI (cluster)
    mlflow_artifact_root: str | None = None  # default: folder in home (local), via the server (cluster)
    optuna_storage: str | None = None  # default: sqlite in home (local), RATCHET_POSTGRES_URL (cluster)
    ledger_url: str | None = None  # default: sqlite in home (local), RATCHET_POSTGRES_URL (cluster)
    postgres_url: str | None = None  # cluster: the database of ratchet's own tables
    # the nodes of this training run, set by the multi-node job (``ratchet-node --num-nodes``):
    # overrides ``train.num_nodes`` of the config files (ratchet.runtime.context.load_context)
    num_nodes: int | None = Field(None, ge=1)
    # the address the home's Prefect server (and its UI) binds: loopback unless set; any other
    # needs PREFECT_SERVER_API_AUTH_STRING (ratchet_cli.server refuses to start it without)
    prefect_host: str = "127.0.0.1"
    # the home's Prefect server serves its dashboard (the Prefect UI) beside its API;
    # RATCHET_PREFECT_UI=0 starts it with the API alone
    prefect_ui: bool = True

    # standard variables of the servers' own clients, read by the cluster profile only:
    # a developer's stray MLFLOW_TRACKING_URI never moves the local profile's stores
    mlflow_server_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))
    prefect_api_url: str | None = Field(None, validation_alias=AliasChoices("PREFECT_API_URL"))

    # -- derived paths (the home folder) ----------------------------------
    @property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def schema_path(self) -> Path:
        return self.root / "schema.yaml"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    # -- stores ------------------------------------------------------------
    @property
    def is_cluster(self) -> bool:
        return self.profile == "cluster"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.is_cluster:
            return self._need(self.mlflow_server_uri, "MLFLOW_TRACKING_URI", "the MLflow server, e.g. http://mlflow:5000")
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Where new experiments keep artifacts (the experiment name is appended)."""
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root.rstrip("/")
        if self.is_cluster:
            if self.tracking_uri.startswith(("http://", "https://")):
                # proxied by the MLflow server to its --artifacts-destination: workers need no S3 keys
                return "mlflow-artifacts:"
            return self._need(None, "RATCHET_MLFLOW_ARTIFACT_ROOT", "e.g. s3://ratchet/mlflow, with MLFLOW_S3_ENDPOINT_URL")
        return (self.root / "mlartifacts").as_uri()

    @property
    def optuna_url(self) -> str:
        if self.optuna_storage:
            return self.optuna_storage
        if self.is_cluster:
            return self._postgres("RATCHET_OPTUNA_STORAGE")
        return f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def ledger(self) -> str:
        if self.ledger_url:
            return self.ledger_url
        if self.is_cluster:
            return self._postgres("RATCHET_LEDGER_URL")
        return f"sqlite:///{self.root / 'ledger.db'}"

    @property
    def data_backend(self) -> str:
        """The data backend this profile expects (selected by its config overlay)."""
        return PROFILE_DATA_BACKEND[self.profile]

    @property
    def profile_config(self) -> Path:
        """The profile's config overlay in the package (``ratchet/configs/<profile>.yaml``),
        merged right after the built-in defaults (``ratchet.core.config.config_layers``)."""
        return CONFIG_DIR / f"{self.profile}.yaml"

    @property
    def project_config(self) -> Path:
        """``<home>/ratchet.yaml``: the project's config when neither ``--config``,
        ``RATCHET_CONFIG`` nor ``./ratchet.yaml`` names one (written by ``ratchet init``)."""
        return self.root / "ratchet.yaml"

    def stores(self, *, hide_passwords: bool = True) -> dict[str, str]:
        """Every resolved store URL, passwords masked: for status output and logs.
        Raises ``ProfileError`` naming the first missing variable."""
        out = {
            "profile": self.profile,
            "mlflow_tracking": self.tracking_uri,
            "mlflow_artifacts": self.artifact_root,
            "optuna": self.optuna_url,
            "ledger": self.ledger,
            "prefect_api": self.prefect_api_url if self.is_cluster else "ephemeral",
            "data_backend": self.data_backend,
        }
        if self.is_cluster and not self.prefect_api_url:
            self._need(None, "PREFECT_API_URL", "the Prefect server, e.g. http://prefect-server:4200/api")
        return {k: mask_password(v) for k, v in out.items()} if hide_passwords else out

    def _need(self, value: str | None, var: str, hint: str) -> str:
        if value:
            return value
        raise ProfileError(f"the {self.profile!r} profile needs {var} ({hint}); see docs/scale.md")

    def _postgres(self, override_var: str) -> str:
        url = self._need(self.postgres_url, "RATCHET_POSTGRES_URL", f"postgresql://USER:PASSWORD@HOST:5432/DB, or {override_var}")
        return sync_postgres_url(url)

    # -- home folder and Prefect -------------------------------------------
    def ensure(self) -> Settings:
        """Create the home's folders; ``HomeError`` (one line naming the home) when it cannot be."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise HomeError(f"home {root} is a file, not a folder (set by --home or RATCHET_HOME)")
        try:
            # the home holds the admin token, Prefect's blocks, the ledger: its owner's alone (0700
            # when made here; a folder that exists keeps its mode)
            for d in (root, self.prefect_home, root / "run"):
                private_dir(d)
            for d in (self.data_dir, self.reports_dir, self.serving_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HomeError(f"cannot create the home folder {root}: {e.strerror or e}") from e
        return self

    def prefect_env(self) -> dict[str, str]:
        """Environment that points Prefect at the home folder. Must be applied
        before ``prefect`` is imported: Prefect reads its settings on import.

        The cluster profile runs against the Prefect server: without
        ``PREFECT_API_URL`` it raises rather than start a throwaway server."""
        env = {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        if os.environ.get(SERVER_AUTH_ENV):  # the server's basic auth: its clients present the same string
            env[CLIENT_AUTH_ENV] = os.environ[SERVER_AUTH_ENV]
        if self.is_cluster:
            env["PREFECT_API_URL"] = self._need(
                self.prefect_api_url, "PREFECT_API_URL", "the Prefect server, e.g. http://prefect-server:4200/api"
            )
        else:
            env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
        return env


def sync_postgres_url(url: str) -> str:
    """A Postgres URL for the synchronous clients (Optuna, MLflow, the ledger),
    with the driver named: psycopg (3). ``postgres://`` (which SQLAlchemy 2
    rejects), a bare ``postgresql://`` and Prefect's async drivers
    (``postgresql+asyncpg://``) all become ``postgresql+psycopg://``, so one
    URL can serve Prefect and ratchet alike. Any other URL is kept as given."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg_async"):
        return f"postgresql+psycopg://{rest}"
    return url


def mask_password(url: str) -> str:
    """``scheme://user:***@host/...`` for any URL that carries a password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def get_settings() -> Settings:
    return Settings()


SERVER_AUTH_ENV = "PREFECT_SERVER_API_AUTH_STRING"  # Prefect 3's basic auth on a self-hosted server
CLIENT_AUTH_ENV = "PREFECT_API_AUTH_STRING"  # what its clients present


def prefect_api_headers() -> dict[str, str]:
    """Headers for a direct HTTP call to the Prefect API: basic auth when an auth string is set,
    as Prefect's own client sends it (``Authorization: Basic base64(user:password)``)."""
    import base64

    auth = os.environ.get(CLIENT_AUTH_ENV) or os.environ.get(SERVER_AUTH_ENV)
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def apply_prefect_env(settings: Settings) -> None:
    """Export the Prefect environment unless the user set those variables."""
    for k, v in settings.prefect_env().items():
        os.environ.setdefault(k, v)
