"""``ratchet relay``: lakeFS action webhooks in, Prefect events out.

A lakeFS server runs hooks itself (``infra/lakefs/_lakefs_actions``); its
post-merge webhook on main lands here and becomes the same
``ratchet.data.published`` event the embedded backend's ingest flow emits, so
the same automation retrains on either backend. Events go to the Prefect
server's REST events API (``POST /api/events``), so this needs no Prefect import.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Query, Request

from ratchet.core.events import DATA_PUBLISHED, data_resource

RELAYED = {"post-merge", "post-commit"}


def lakefs_event_to_prefect(body: dict[str, Any], main_branch: str) -> dict[str, Any] | None:
    """The Prefect event for a lakeFS hook body, or None when it is not a publish to main."""
    if body.get("event_type") not in RELAYED or body.get("branch_id") != main_branch:
        return None
    repo = body.get("repository_id")
    if not repo or not body.get("commit_id"):
        raise ValueError("lakeFS hook body lacks repository_id or commit_id")
    return {
        "id": str(uuid.uuid4()),
        "occurred": body.get("event_time") or datetime.now(UTC).isoformat(),
        "event": DATA_PUBLISHED,
        "resource": data_resource(repo, body["branch_id"], body["commit_id"]),
        "related": [],
        "payload": {
            "source": "lakefs",
            "hook": body.get("hook_id"),
            "source_ref": body.get("source_ref"),
            "commit_message": body.get("commit_message"),
            "metadata": body.get("commit_metadata") or {},
        },
    }


def create_relay_app(
    prefect_api_url: str, main_branch: str = "main", token: str | None = None, timeout: float = 10.0
) -> FastAPI:
    app = FastAPI(title="ratchet relay: lakeFS webhooks to Prefect events")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/lakefs/events", status_code=202)
    async def lakefs_hook(request: Request, t: str | None = Query(None, alias="token")) -> dict[str, Any]:
        # lakeFS sends the token as a bearer header (infra/lakefs/_lakefs_actions); ?token= also works
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else t
        if token and not (given and hmac.compare_digest(given, token)):
            raise HTTPException(401, "missing or wrong token for this relay (Authorization: Bearer ...)")
        try:
            body = await request.json()
        except ValueError as e:
            raise HTTPException(400, f"body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise HTTPException(422, "a lakeFS hook body is a JSON object")
        try:
            event = lakefs_event_to_prefect(body, main_branch)
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        if event is None:
            return {"relayed": False, "reason": f"{body.get('event_type')} on {body.get('branch_id')}"}
        async with httpx.AsyncClient(timeout=timeout) as client:
            r = await client.post(f"{prefect_api_url.rstrip('/')}/events", json=[event])
        if r.status_code >= 300:
            raise HTTPException(502, f"Prefect refused the event: {r.status_code} {r.text[:200]}")
        return {"relayed": True, "event": event["event"], "commit": event["resource"]["ratchet.commit"]}

    return app
