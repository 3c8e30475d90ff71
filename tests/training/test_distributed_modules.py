"""How ``ratchet.training.model.distributed`` hangs together: ranks is the leaf, no cycle in
``ratchet.training``, a node agent never imports Lightning, every rank process runs the rank module."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ratchet.training.model.distributed import ranks
from tests.conftest import ROOT

PACKAGE = "ratchet.training.model.distributed"


def test_every_rank_process_runs_the_rank_module():
    module = importlib.import_module(ranks.RANK_MODULE)
    assert module.__name__ == f"{PACKAGE}.rank_main" and callable(module.main)


def test_the_modules_import_each_other_without_a_cycle():
    grimp = pytest.importorskip("grimp")  # import-linter's import graph: function-level imports count
    graph = grimp.build_graph("ratchet")
    imports = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith(f"{PACKAGE}.")}
        for m in graph.modules if m.startswith(f"{PACKAGE}.")
    }
    assert imports[f"{PACKAGE}.ranks"] == set()
    assert imports[f"{PACKAGE}.loop"] == {f"{PACKAGE}.ranks"}
    assert imports[f"{PACKAGE}.node"] == {f"{PACKAGE}.ranks"}
    cycles = [
        (m, i) for m in graph.modules if m.startswith("ratchet.training")
        for i in graph.find_modules_directly_imported_by(m) if graph.chain_exists(importer=i, imported=m)
    ]
    assert cycles == []


def test_a_node_agent_imports_neither_lightning_nor_the_fit_loop():
    code = (
        f"import sys, {PACKAGE}.node; "
        f"print(sorted(m for m in sys.modules if m.startswith('lightning') or m == '{PACKAGE}.loop'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
