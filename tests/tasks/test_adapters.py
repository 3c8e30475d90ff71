"""tasks/: Prefect adapters of a few lines over the core, and what they add (artifacts, events)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.events import recorded_events

MAX_STATEMENTS = 4  # beyond this a task is doing the core's work


def _is_task(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "task") or getattr(d, "id", None) == "task"
        for d in node.decorator_list
    )


def _tasks() -> list[tuple[str, ast.FunctionDef]]:
    out = []
    for f in sorted((ROOT / "tasks").glob("*.py")):
        for node in ast.parse(f.read_text()).body:
            if _is_task(node):
                out.append((f"{f.stem}.{node.name}", node))
    return out


def test_tasks_holds_nothing_but_tasks():
    """Prefect client code that is not a task (pausing, superseding, secrets, events) lives in
    ratchet_prefect/, where the command line can use it too; logic lives in ratchet/."""
    others = [
        f"{f.stem}.{node.name}"
        for f in sorted((ROOT / "tasks").glob("*.py"))
        for node in ast.parse(f.read_text()).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not _is_task(node)
    ]
    assert not others, f"not tasks, in tasks/: {others}"


def test_tasks_take_their_defaults_from_one_place():
    """Every task is ratchet_prefect.options.task (no cache, by default) with a named retry policy."""
    for f in sorted((ROOT / "tasks").glob("*.py")):
        text = f.read_text()
        assert "from prefect import task" not in text and "NO_CACHE" not in text, f.name
        assert "retries=" not in text, f"{f.name}: name the retry policy (ratchet_prefect.options)"


def test_there_are_tasks_to_check():
    assert len(_tasks()) >= 30


@pytest.mark.parametrize("name,node", _tasks(), ids=[n for n, _ in _tasks()])
def test_each_task_is_a_thin_adapter(name, node):
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    nested = [n for n in ast.walk(node) if isinstance(n, (ast.For, ast.While, ast.FunctionDef)) and n is not node]
    assert len(body) <= MAX_STATEMENTS and not nested, (
        f"task {name} has {len(body)} statements{' and a loop or nested function' if nested else ''}: "
        "move its logic into ratchet/ and keep the task an adapter"
    )


VERBS = {
    "adapt", "analyze", "announce", "audit", "close", "commit", "connect", "emit", "evaluate", "find", "generate",
    "init", "load", "measure", "promote", "prune", "publish", "record", "register", "roll", "rollback", "send",
    "request", "score", "set", "stage", "start", "stop", "supersede", "trim", "tune", "wait", "write",
}


def test_task_names_are_verb_object():
    for name, _ in _tasks():
        verb, _, obj = name.split(".")[1].partition("_")
        assert verb in VERBS and obj, f"{name}: tasks are named verb_object (a new verb goes into VERBS)"


def test_announce_model_event_reaches_the_server():
    from prefect import flow

    from tasks.events import announce_model_event

    @flow
    def announce() -> None:
        announce_model_event("ratchet.model.registered", "tasks-test-model", {"version": "7"})

    announce()
    (event,) = recorded_events("ratchet.model.registered", lambda e: e["resource"].get("ratchet.model") == "tasks-test-model")
    assert event["payload"]["version"] == "7"
    assert event["resource"]["prefect.resource.id"] == "ratchet.model.tasks-test-model"


def test_publish_ledger_shows_every_entry_as_a_table_artifact(ctx):
    import json

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from ratchet.promotion.ledger import Entry
    from tasks.promotion import publish_ledger

    model = ctx.cfg.model_name
    ctx.ledger.append(Entry(action="promote", trigger="test", model=model, from_version=None, to_version="1"))
    ctx.ledger.append(Entry(action="keep", trigger="test", model=model, from_version="1", to_version="2",
                            evidence={"p_value": 0.4}))

    @flow
    def publish() -> str:
        return publish_ledger(ctx)

    publish()

    async def latest():
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["promotion-ledger"])), limit=50
            )
            return sorted(arts, key=lambda a: a.created)[-1]

    import asyncio

    art = asyncio.run(latest())
    rows = json.loads(art.data) if isinstance(art.data, str) else art.data
    assert [(r["action"], r["from"], r["to"], r["p_value"]) for r in rows] == [
        ("promote", None, "1", None), ("keep", "1", "2", 0.4),
    ]


def test_no_task_module_imports_another():
    for f in (ROOT / "tasks").glob("*.py"):
        tree = ast.parse(Path(f).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.startswith("tasks.")}, f"{f.name} imports another task module"
