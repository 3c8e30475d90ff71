"""Real data through the command line, from a user's folder outside the repository.

Each data set ships inside an installable package. It is split into batches; the first
is the sample ``ratchet init`` infers the schema from, then every batch is ingested (none
of them may be rejected: they are all clean), a model is trained and promoted, and the
service answers a raw row. penguins_raw carries identifiers, free text, a date, rare
categories and nulls; cars has a name column, a date and a regression target.

The tool is the wheel alone, built from the repository and installed into a bare folder
(`python -m ratchet_cli` with only that folder on PYTHONPATH for ratchet; dependencies from
this venv). Slow: `pytest -m slow tests/cli/test_real_data.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from ratchet.core.files import free_port
from tests.cli.test_wheel import build_and_install

pytestmark = pytest.mark.slow


def penguins_raw() -> tuple[pd.DataFrame, str]:
    from palmerpenguins import load_penguins_raw

    df = load_penguins_raw()
    return pd.concat([df, df.sample(20, random_state=1)]), "Species"  # some duplicate rows too


def cars() -> tuple[pd.DataFrame, str]:
    from vega_datasets import local_data

    return local_data.cars().dropna(subset=["Miles_per_Gallon"]), "Miles_per_Gallon"


def breast_cancer() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame, "target"


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    return build_and_install(tmp_path_factory.mktemp("wheel"))


TOOL = (sys.executable, "-m", "ratchet_cli")


def _cli(project, site, *args: str, code: int = 0, timeout: float = 600) -> dict:
    r = project.run(*args, "--json", cmd=TOOL, timeout=timeout, PYTHONPATH=str(site))
    assert r.returncode == code, (args, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _batches(project, frame: pd.DataFrame, n: int) -> list[str]:
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    names = []
    for i, part in enumerate(np.array_split(frame, n)):
        name = f"batch-{i}.csv"
        part.to_csv(project.folder / name, index=False)
        names.append(name)
    return names


@pytest.mark.parametrize("load", [penguins_raw, cars, breast_cancer], ids=lambda f: f.__name__)
def test_clean_real_batches_go_through_the_whole_loop(project, wheel_site, load):
    frame, target = load()
    batches = _batches(project, frame, 4)
    (project.folder / "ratchet.yaml").write_text("train: {max_epochs: 8}\ntune: {trials: 2}\n")

    init = _cli(project, wheel_site, "init", "--schema-from", batches[0], "--target", target)
    assert Path(init["config_files"][0]).is_relative_to(wheel_site)  # the built-in config of the wheel
    statuses = [_cli(project, wheel_site, "ingest", b)["status"] for b in batches]
    assert statuses == ["published"] * len(batches)  # no clean batch rejected
    again = _cli(project, wheel_site, "ingest", batches[1])
    assert again["status"] == "duplicate"

    trained = _cli(project, wheel_site, "train")
    promoted = _cli(project, wheel_site, "promote")
    assert promoted["action"] == "promote", promoted
    assert promoted["champion"] == trained["model_version"]

    port = free_port()
    server = subprocess.Popen([*TOOL, "serve", "--port", str(port)], cwd=project.folder,
                              env=project.env(PYTHONPATH=str(wheel_site)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            time.sleep(0.5)
        row = json.loads(frame.drop(columns=[target]).iloc[:1].to_json(orient="records", date_format="iso"))[0]
        r = httpx.post(f"{url}/predict", json={"row": row}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == trained["model_version"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    if init.get("ignored"):  # identifiers and free text were set aside, with a reason each
        assert all(init["ignored"].values())
    task = _cli(project, wheel_site, "status")
    assert task["champion"] == trained["model_version"]
