"""A user's project folder outside the repository, with scikit-learn's breast cancer data."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

RATCHET = Path(sys.executable).parent / "ratchet"  # the installed console script of this venv


@dataclass
class Project:
    folder: Path
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user's shell: no RATCHET_CONFIG (the test suite's is dropped)."""
        env = {k: v for k, v in os.environ.items() if k not in ("RATCHET_CONFIG", "RATCHET_DEBUG")}
        return {**env, "RATCHET_HOME": str(self.home), **extra}

    def run(self, *args: str, cmd: tuple[str, ...] = (str(RATCHET),), timeout: float = 120, **env: str):
        return subprocess.run(
            [*cmd, *args], cwd=self.folder, env=self.env(**env), capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture(scope="session")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breast_cancer) -> Project:
    folder = tmp_path / "my-project"
    folder.mkdir()
    assert not folder.resolve().is_relative_to(ROOT)
    breast_cancer.iloc[:300].to_csv(folder / "sample.csv", index=False)
    breast_cancer.iloc[300:435].to_csv(folder / "batch-1.csv", index=False)
    breast_cancer.iloc[435:].to_csv(folder / "batch-2.csv", index=False)
    monkeypatch.chdir(folder)
    # the CLI exports RATCHET_CONFIG / RATCHET_HOME for its subcommands: monkeypatch restores them
    monkeypatch.delenv("RATCHET_CONFIG", raising=False)
    monkeypatch.delenv("RATCHET_DEBUG", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("RATCHET_HOME", str(home))
    return Project(folder, home)
