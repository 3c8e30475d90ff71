"""Where things live: one home folder holds every embedded store.

``RATCHET_HOME`` (default ``./.ratchet``) holds Prefect's database, MLflow's
tracking and registry database and artifacts, the embedded data repository,
Optuna's study storage, the promotion ledger, serving state and reports. Each
store's URL can be overridden by environment for the cluster profile.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RATCHET_", extra="ignore")

    home: Path = Field(default=Path(".ratchet"))
    mlflow_tracking_uri: str | None = None  # default: sqlite in home
    mlflow_artifact_root: str | None = None  # default: folder in home
    optuna_storage: str | None = None  # default: sqlite in home
    ledger_url: str | None = None  # default: sqlite in home

    # -- derived paths (embedded profile) --------------------------------
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

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.root / "mlartifacts").as_uri()

    @property
    def optuna_url(self) -> str:
        return self.optuna_storage or f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def ledger(self) -> str:
        return self.ledger_url or f"sqlite:///{self.root / 'ledger.db'}"

    def ensure(self) -> Settings:
        for d in (self.root, self.prefect_home, self.data_dir, self.reports_dir, self.serving_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def prefect_env(self) -> dict[str, str]:
        """Environment that points Prefect at the home folder. Must be applied
        before ``prefect`` is imported: Prefect reads its settings on import."""
        env = {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
            "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        return env


def get_settings() -> Settings:
    return Settings()


def apply_prefect_env(settings: Settings) -> None:
    """Export the Prefect environment unless the user set those variables."""
    for k, v in settings.prefect_env().items():
        os.environ.setdefault(k, v)
