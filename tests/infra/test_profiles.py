"""The `local` and `cluster` profiles: the same training flow, no code change.

The training flow builds its context with ``options.context()``; a deployment leaves its
``RunOptions`` (config files, overrides, home) at their defaults, so
the environment alone decides where the stores are. Under ``local`` every store
is a file under the home folder; under ``cluster`` every store is the URL the
environment names, and the data backend is lakeFS.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ratchet.core.config import load_config
from ratchet.core.files import free_port
from ratchet.core.settings import PROFILE_DATA_BACKEND, PROFILES, ProfileError, Settings, sync_postgres_url
from tests.conftest import ROOT

STORE_VARS = (
    "RATCHET_PROFILE",
    "RATCHET_MLFLOW_TRACKING_URI",
    "RATCHET_MLFLOW_ARTIFACT_ROOT",
    "RATCHET_OPTUNA_STORAGE",
    "RATCHET_LEDGER_URL",
    "RATCHET_POSTGRES_URL",
    "MLFLOW_TRACKING_URI",
    "PREFECT_API_URL",
    "LAKEFS_ENDPOINT",
    "LAKEFS_ACCESS_KEY_ID",
    "LAKEFS_SECRET_ACCESS_KEY",
    "LAKEFS_STORAGE_NAMESPACE",
)




def profile_env(profile: str, home: Path) -> dict[str, str]:
    """What an operator sets to pick a profile: environment only."""
    env = {
        "RATCHET_HOME": str(home),
        "RATCHET_PROFILE": profile,
        # the test override; the built-in config and the profile's overlay come with the package
        "RATCHET_CONFIG": str(ROOT / "configs" / "test.yaml"),
    }
    if profile == "cluster":
        env |= {
            "MLFLOW_TRACKING_URI": "http://mlflow.ratchet.svc:5000",
            "RATCHET_POSTGRES_URL": "postgresql://ratchet:s3cret@postgres.ratchet.svc:5432/ratchet",
            "PREFECT_API_URL": "http://prefect-server.ratchet.svc:4200/api",
            # nothing listens there: opening the repository must try lakeFS, and fail fast
            "LAKEFS_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "LAKEFS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "LAKEFS_SECRET_ACCESS_KEY": "example-secret",
            "LAKEFS_STORAGE_NAMESPACE": "s3://ratchet-lakefs/ratchet",
        }
    return env


@pytest.fixture
def use_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def apply(profile: str) -> Path:
        for var in STORE_VARS:
            monkeypatch.delenv(var, raising=False)
        home = tmp_path / profile
        for k, v in profile_env(profile, home).items():
            monkeypatch.setenv(k, v)
        return home

    return apply


def train_flow_context():
    """The context exactly as the training flow builds it when a deployment runs it."""
    from flows.train import train_flow

    options = inspect.signature(train_flow.fn).parameters["options"].default
    defaults = {k: getattr(options, k) for k in ("config_files", "overrides", "home")}
    assert defaults == {"config_files": None, "overrides": None, "home": None}, (
        "the training flow must leave store selection to the environment"
    )
    return options.context()


def test_local_profile_resolves_the_embedded_stores(use_profile):
    home = use_profile("local").resolve()
    ctx = train_flow_context()
    s = ctx.settings
    assert s.profile == "local"
    assert s.root == home
    assert s.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert s.artifact_root == (home / "mlartifacts").as_uri()
    assert s.optuna_url == f"sqlite:///{home / 'optuna.db'}"
    assert s.ledger == f"sqlite:///{home / 'ledger.db'}"
    assert ctx.cfg.data.backend == "embedded" == s.data_backend
    # the stores work with nothing running: the embedded repository and the SQLite ledger
    from ratchet.data.repository.embedded import EmbeddedRepository
    from ratchet.promotion.ledger import Entry

    assert isinstance(ctx.repo, EmbeddedRepository)
    assert Path(ctx.repo.root).resolve().is_relative_to(home)
    ctx.ledger.append(Entry(action="keep", trigger="test", model=ctx.cfg.model_name))
    assert [e.action for e in ctx.ledger.history()] == ["keep"]
    assert (home / "ledger.db").exists()


def test_cluster_profile_resolves_the_cluster_urls(use_profile):
    home = use_profile("cluster")
    ctx = train_flow_context()
    s = ctx.settings
    assert s.profile == "cluster"
    assert s.tracking_uri == "http://mlflow.ratchet.svc:5000"
    assert s.artifact_root == "mlflow-artifacts:"  # proxied by the MLflow server to S3
    pg = "postgresql+psycopg://ratchet:s3cret@postgres.ratchet.svc:5432/ratchet"
    assert s.optuna_url == pg
    assert s.ledger == pg
    assert ctx.ledger.url == pg
    assert ctx.cfg.data.backend == "lakefs" == s.data_backend
    assert s.prefect_env()["PREFECT_API_URL"] == "http://prefect-server.ratchet.svc:4200/api"
    # stores() is safe to print: the password is masked
    shown = s.stores()
    assert "s3cret" not in str(shown) and shown["ledger"].startswith("postgresql+psycopg://ratchet:***@")
    # no embedded store appears under the home folder
    assert not any(home.rglob("*.db"))
    # the data repository is lakeFS at LAKEFS_ENDPOINT (nothing listens there), not the embedded one
    from ratchet.data.repository import DataRepoError

    with pytest.raises(DataRepoError, match="lakeFS"):
        ctx.repo  # noqa: B018


def test_cluster_profile_names_what_is_missing(use_profile, monkeypatch):
    use_profile("cluster")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("RATCHET_POSTGRES_URL")
    monkeypatch.delenv("PREFECT_API_URL")
    s = Settings()
    with pytest.raises(ProfileError, match="MLFLOW_TRACKING_URI"):
        s.tracking_uri  # noqa: B018
    with pytest.raises(ProfileError, match="RATCHET_POSTGRES_URL"):
        s.ledger  # noqa: B018
    with pytest.raises(ProfileError, match="RATCHET_POSTGRES_URL"):
        s.optuna_url  # noqa: B018
    with pytest.raises(ProfileError, match="PREFECT_API_URL"):
        s.prefect_env()
    # one store overridden on its own still works in the cluster profile
    monkeypatch.setenv("RATCHET_LEDGER_URL", "postgresql+psycopg://ledger@db/ledger")
    assert Settings().ledger == "postgresql+psycopg://ledger@db/ledger"


def test_local_profile_ignores_the_servers_own_variables(use_profile, monkeypatch):
    home = use_profile("local").resolve()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://somewhere-else:5000")
    monkeypatch.setenv("PREFECT_API_URL", "http://somewhere-else:4200/api")
    s = Settings()
    assert s.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert "PREFECT_API_URL" not in s.prefect_env()


def test_unknown_profile_is_rejected(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("RATCHET_PROFILE", "clustr")
    with pytest.raises(ValidationError, match="local"):
        Settings()


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_overlays_are_valid_config(profile):
    """ratchet/configs/<profile>.yaml merges onto the built-in config and selects the profile's backend."""
    overlay = Settings(profile=profile).profile_config
    assert overlay.is_file() and overlay.is_relative_to(ROOT / "ratchet" / "configs")
    assert load_config([overlay]).data.backend == PROFILE_DATA_BACKEND[profile]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+asyncpg://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_get_the_sync_driver(given, expected):
    assert sync_postgres_url(given) == expected
