"""The `gc` flow (what the gc/scheduled deployment runs): the same parts as `ratchet gc`, one task each."""

from __future__ import annotations

import time

from ratchet.data.repository.embedded import EmbeddedRepository
from ratchet.runtime.options import RunOptions
from tests.conftest import CONFIG_FILES
from tests.data.test_gc import GC_NOW, _home_with_history, _scratch


def test_gc_flow_dry_run_then_collects_what_it_reported(home):
    from flows.gc import gc_flow

    ctx, rejects = _home_with_history(home, rejected=1)
    _scratch(ctx.repo, 2)
    options = RunOptions(config_files=CONFIG_FILES, overrides=GC_NOW, home=str(home))
    dry = gc_flow(dry_run=True, options=options).to_dict()
    assert dry["bytes_freed"] > 0 and ctx.repo.branch_exists(rejects[0][0])
    done = gc_flow(options=options).to_dict()
    assert done["bytes_freed"] == dry["bytes_freed"]
    assert done["parts"]["rejected_branches"]["items"] == [rejects[0][0]]
    assert not ctx.repo.branch_exists(rejects[0][0]) and EmbeddedRepository(ctx.repo.root).fsck() == []
    assert gc_flow(options=options).to_dict()["bytes_freed"] == 0


def test_gc_flow_deletes_flow_runs_past_their_age_and_keeps_the_newer(home):
    import httpx
    from prefect.settings import PREFECT_API_URL

    from flows.gc import gc_flow

    api = PREFECT_API_URL.value()
    keep = RunOptions(config_files=CONFIG_FILES, overrides=GC_NOW, home=str(home))
    first = gc_flow(return_state=True, options=keep)
    assert first.is_completed() and first.result().to_dict()["parts"]["flow_runs"]["counts"] == {}
    old = first.state_details.flow_run_id
    assert httpx.get(f"{api}/flow_runs/{old}").status_code == 200
    # a second later every run before this one is past an age of a tenth of a second
    time.sleep(1.0)
    now = RunOptions(config_files=CONFIG_FILES, home=str(home),
                     overrides={**GC_NOW, "retention": {**GC_NOW["retention"], "flow_run_age_days": 1e-6}})
    dry = gc_flow(dry_run=True, options=now).to_dict()["parts"]["flow_runs"]
    assert dry["counts"]["flow runs"] >= 1 and httpx.get(f"{api}/flow_runs/{old}").status_code == 200
    done = gc_flow(options=now).to_dict()["parts"]["flow_runs"]
    assert done["counts"]["flow runs"] >= 1
    assert httpx.get(f"{api}/flow_runs/{old}").status_code == 404
    running = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}})
    assert all(r["id"] != old for r in running.json())
