"""Pure concept drift through the command line only, from a user's folder outside the repository.

River's Agrawal loan stream (six numbers; education, car maker and zip code as strings): six
batches labelled by classification function 2, `ratchet ingest` each, `ratchet train`,
`ratchet promote`; then three batches of the same features labelled by function 8, ingested,
and `ratchet train`, `ratchet promote` once more. The new champion must be promoted and, on a
fresh holdout of the new rule, be within 3 points of a model trained (with the same training
code, ``ratchet.training.model.fit``) only on the post-change batches.

The installed `ratchet` of this venv, in a home of its own; its Prefect server is the one the
first command starts for that home (as a user's would be), stopped by `ratchet down`.
Slow (a few minutes): `pytest -m slow tests/cli/test_concept_drift_cli.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.drift_recovery import AGRAWAL_NEW, TARGET, accuracy, agrawal_frame, agrawal_stream

pytestmark = pytest.mark.slow

ROWS, DRIFT_AT, SEED = 500, 6, 5


def _cli(project, *args: str, timeout: float = 600) -> dict:
    r = project.run(*args, "--json", timeout=timeout, RATCHET_PREFECT_SERVER="persistent")
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _post_change_reference(ctx, folder: Path, names: list[str]) -> object:
    """A model of the same code and config trained only on the post-change batches, split as
    ratchet splits a window (the same rows train, validate and are held out)."""
    import pandas as pd

    from ratchet.training.model.fit import fit
    from ratchet.training.window import split_frame

    frame = pd.concat([pd.read_csv(folder / n) for n in names], ignore_index=True)
    t = ctx.cfg.train
    train, val, _ = split_frame(frame, t.val_fraction, t.test_fraction, t.seed)
    return fit(train, val, ctx.schema, t, progress=False).predictor


def test_only_the_labelling_rule_changes_and_the_cli_promotes_a_model_of_the_new_rule(project):
    from ratchet.runtime.context import load_context
    from tests.conftest import CONFIG_FILES

    (project.folder / "ratchet.yaml").write_text("train: {max_epochs: 6}\ntune: {trials: 2}\n")
    names = []
    for i, df in enumerate(agrawal_stream(DRIFT_AT + 3, ROWS, DRIFT_AT, SEED)):
        names.append(f"loans-{i}.csv")
        df.to_csv(project.folder / names[-1], index=False)
    try:
        _cli(project, "init", "--schema-from", names[0], "--target", TARGET)
        # 1. six batches of the old rule, a first champion
        assert [_cli(project, "ingest", n)["status"] for n in names[:DRIFT_AT]] == ["published"] * DRIFT_AT
        v1 = _cli(project, "train")["model_version"]
        first = _cli(project, "promote")
        assert first["action"] == "promote" and first["champion"] == v1, first

        # 2. three batches in which only the labelling rule changed: each scored by the champion
        drifted = [_cli(project, "ingest", n) for n in names[DRIFT_AT:]]
        assert [d["status"] for d in drifted] == ["published"] * 3, drifted
        verdicts = [d["concept"] for d in drifted]
        assert all(v["detected"] for v in verdicts), verdicts
        assert {v["onset"] for v in verdicts} == {drifted[0]["batch_id"]}, verdicts

        # 3. train and promote: the window starts at the onset, the gate judges on its rows
        trained = _cli(project, "train")
        second = _cli(project, "promote")
        assert second["action"] == "promote" and second["champion"] == trained["model_version"] != v1, second
        lineage = _cli(project, "lineage", trained["model_version"])
        assert "(batch scores)" in json.dumps(lineage), lineage

        # the new champion against a model trained on the post-change batches only
        ctx = load_context([CONFIG_FILES[0], str(project.folder / "ratchet.yaml")], home=str(project.home))
        fresh = agrawal_frame(2000, SEED * 1000 + 999, AGRAWAL_NEW)
        ours = accuracy(ctx.registry.load_predictor("champion"), fresh)
        reference = accuracy(_post_change_reference(ctx, project.folder, names[DRIFT_AT:]), fresh)
        stale = accuracy(ctx.registry.load_predictor(v1), fresh)
        print(f"new-rule holdout accuracy: champion {ours:.3f}, post-change reference {reference:.3f}, "
              f"stale {stale:.3f}")
        assert ours >= reference - 0.03, (ours, reference)
        assert stale < ours - 0.2, (stale, ours)
    finally:
        project.run("down", "--json", timeout=120, RATCHET_PREFECT_SERVER="persistent")
