"""The `gc` flow (what the gc/scheduled deployment runs): the same parts as `ratchet gc`, one task each."""

from __future__ import annotations

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
