"""`ratchet relay`: a lakeFS post-merge webhook becomes a ratchet.data.published event."""

from __future__ import annotations

import time

import httpx
from fastapi.testclient import TestClient

from ratchet.data.relay import create_relay_app


def _published(api: str, commit: str) -> list[dict]:
    r = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"name": ["ratchet.data.published"]}}})
    r.raise_for_status()
    return [e for e in r.json()["events"] if e["resource"].get("ratchet.commit") == commit]


def test_post_merge_on_main_is_relayed_and_others_are_not():
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    client = TestClient(create_relay_app(api, "main", token="s3cret"))
    hook = {
        "event_type": "post-merge", "hook_id": "relay",
        "repository_id": "ratchet", "branch_id": "main", "source_ref": "ingest-x", "commit_id": "abc123",
    }
    assert client.post("/lakefs/events", json=hook).status_code == 401
    r = client.post("/lakefs/events", json=hook, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 202 and r.json()["relayed"] is True
    other = client.post("/lakefs/events?token=s3cret", json={**hook, "branch_id": "ingest-x", "commit_id": "zzz"})
    assert other.json()["relayed"] is False
    assert client.post("/lakefs/events?token=s3cret", content=b"not json").status_code == 400
    assert client.post("/lakefs/events?token=s3cret", json={**hook, "commit_id": None}).status_code == 422

    deadline = time.monotonic() + 30
    while not _published(api, "abc123") and time.monotonic() < deadline:
        time.sleep(0.5)
    events = _published(api, "abc123")
    assert len(events) == 1
    assert events[0]["resource"]["prefect.resource.id"] == "ratchet.data.ratchet"
    assert not _published(api, "zzz")
