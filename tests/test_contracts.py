"""The contracts between stages stay typed: no core module reads a version's registry tags or
the gate's evidence by key (``docs/architecture.md``, "Contracts")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from ratchet.promotion.decision import GateDecision, GateEvidence

CORE = Path(__file__).resolve().parents[1] / "ratchet"

OWNER = "training/versions.py"  # VersionLineage / VersionMarks: the one module that knows tag keys
# (module, function) where a read by key is the point: the registry's generic tag matcher, the
# ledger reading its own stored record, and the canary's per-step measurements (not the gate's)
ALLOWED = {
    ("training/registry.py", "find_version"),
    ("promotion/ledger.py", "figures"),
    ("delivery/report.py", "step_rows"),
    ("delivery/rollout.py", "_short_of_evidence"),
}


def _keyed_reads(tree: ast.AST, names: set[str]) -> list[tuple[str, int]]:
    """(innermost function, line) of each ``x.<name>[...]``, ``x.<name>.get(...)``, ``<name>[...]``
    or ``<name>.get(...)`` in a module."""
    found = []

    def visit(node: ast.AST, func: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        target = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):  # a read, not a store
            target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target = node.func.value
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else None
        if name in names:
            found.append((func, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, "<module>")
    return found


def test_no_core_module_reads_tags_or_gate_evidence_by_key():
    found = set()
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE).as_posix()
        for func, line in _keyed_reads(ast.parse(path.read_text()), {"tags", "evidence"}):
            if rel != OWNER and (rel, func) not in ALLOWED:
                found.add(f"{rel}:{line} ({func})")
    assert not found, "read by key instead of VersionLineage/VersionMarks/GateEvidence: " + ", ".join(sorted(found))


def test_the_detector_finds_a_keyed_read():
    # the check above can fail: a read by key is found, a typed read is not
    tree = ast.parse("def f(d):\n    a = d.evidence['p_value']\n    b = d.evidence.get('n')\n    return d.evidence.n\n")
    assert _keyed_reads(tree, {"evidence"}) == [("f", 2), ("f", 3)]


def test_gate_evidence_is_frozen_and_extended_by_copy():
    ev = GateEvidence.model_validate({"p_value": 0.01, "n": 40, "checks": {"floor": True}, "discordant": {"total": 3}})
    with pytest.raises(ValidationError):
        ev.p_value = 0.5
    more = ev.with_(data_commit="abc", checks={**ev.checks, "slices": False})
    assert (ev.data_commit, ev.checks) == (None, {"floor": True})  # the original is unchanged
    assert more.data_commit == "abc" and more.checks == {"floor": True, "slices": False}
    assert more.discordant == {"total": 3}  # a test's own details travel along
    # what the ledger stores: only what was set, the details included
    assert more.to_dict() == {"p_value": 0.01, "n": 40, "checks": {"floor": True, "slices": False},
                              "discordant": {"total": 3}, "data_commit": "abc"}
    assert GateDecision("keep", ["x"], more).to_dict()["evidence"] == more.to_dict()


def test_stored_evidence_of_any_action_reads():
    # a rollback's evidence (no gate figures) and an older entry's reads without validation
    assert GateEvidence.stored({"reason": "p99", "traffic_errors": []}).p_value is None
    assert GateEvidence.stored({"p_value": 0.02, "n": "12"}).headline() == {"p_value": 0.02, "difference": None,
                                                                          "n": "12"}
