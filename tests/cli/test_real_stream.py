"""A real time-ordered stream through the command line, as a user runs it: vega_datasets'
seattle-weather (NOAA daily records, 2012-2015, a ``date`` column and the day's ``weather``) in
eight half-year batches by date. ``ratchet lineage`` names every candidate window with its mean loss
over a rolling origin, and the window is chosen by that evidence, not cut to the newest batch by
the date's calendar parts or by the label's seasonal base rate. Slow: about 5 minutes here."""

from __future__ import annotations

import json

import pytest

from benchmarks.drift_recovery import seattle_stream

pytestmark = pytest.mark.slow


def _cli(project, *args: str, timeout: float = 600) -> dict:
    r = project.run(*args, "--json", timeout=timeout)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_lineage_names_the_candidate_windows_and_the_choice_follows_their_scores(project):
    frames, target = seattle_stream()
    import pandas as pd

    pd.concat(frames).to_csv(project.folder / "all.csv", index=False)
    _cli(project, "init", "--schema-from", "all.csv", "--target", target)
    # the user opts in to the best rule in the project config init wrote (the shipped default is since_drift)
    config = project.home / "ratchet.yaml"
    assert "window: since_drift" in config.read_text()
    config.write_text(config.read_text().replace("window: since_drift", "window: best", 1))
    for i, df in enumerate(frames):
        df.to_csv(project.folder / f"half-{i}.csv", index=False)
        assert _cli(project, "ingest", f"half-{i}.csv")["status"] == "published"
    _cli(project, "train", "--trials", "1")
    lineage = _cli(project, "lineage", "1")
    candidates = lineage["data_window_candidates"]
    assert {c["name"] for c in candidates} >= {"newest 1", "newest 2", "newest 3", "newest 6", "all"}
    assert all(c["loss"] is not None for c in candidates)
    best = min(candidates, key=lambda c: c["loss"])
    assert "within 1.96 SE of it, the most data" in lineage["data_window_choice"]  # train.window_tie_z as shipped
    tied = [c["batches"] for c in candidates if c["loss"] - best["loss"] <= 1.96 * c["se"] + 1e-9]
    assert int(lineage["data_window_batches"]) == max(tied)
    assert lineage["data_window_rule"].startswith(f"best of {len(candidates)} candidates")
    assert lineage["data_window_choice"].startswith("lowest mean proxy loss over a rolling origin")
    # the label's seasonal shift is reported apart, never an onset
    assert "prior shift, not an onset" in lineage["data_window_rule"]
    assert set(lineage["feature_importance"]) == {"date", "precipitation", "temp_max", "temp_min", "wind"}
