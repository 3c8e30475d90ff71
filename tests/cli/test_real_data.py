"""Real data through the command line, from a user's folder outside the repository.

Each data set ships inside an installable package. It is split into batches; the first
is the sample ``ratchet init`` infers the schema from, then every batch is ingested (none
of them may be rejected: they are all clean), a model is trained and promoted, and the
service answers a raw row. penguins_raw carries identifiers, free text, a date, rare
categories and nulls; cars has a name column, a date and a regression target.

Slow (a Prefect server per command): `pytest -m slow tests/cli/test_real_data.py`.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from ratchet.core.files import free_port
from tests.cli.conftest import RATCHET

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


def _cli(project, *args: str, code: int = 0, timeout: float = 600) -> dict:
    r = project.run(*args, "--json", timeout=timeout)
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
def test_clean_real_batches_go_through_the_whole_loop(project, load):
    frame, target = load()
    batches = _batches(project, frame, 4)
    (project.folder / "ratchet.yaml").write_text("train: {max_epochs: 8}\ntune: {trials: 2}\n")

    init = _cli(project, "init", "--schema-from", batches[0], "--target", target)
    statuses = [_cli(project, "ingest", b)["status"] for b in batches]
    assert statuses == ["published"] * len(batches)  # no clean batch rejected
    again = _cli(project, "ingest", batches[1])
    assert again["status"] == "duplicate"

    trained = _cli(project, "train")
    promoted = _cli(project, "promote")
    assert promoted["action"] == "promote", promoted
    assert promoted["champion"] == trained["model_version"]

    port = free_port()
    server = subprocess.Popen([str(RATCHET), "serve", "--port", str(port)], cwd=project.folder,
                              env=project.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    task = _cli(project, "status")
    assert task["champion"] == trained["model_version"]
