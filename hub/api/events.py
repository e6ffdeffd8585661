"""Inbox events: what arrived, what the rules did with it, and replaying one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from hub.api.auth import Admin, Hub, Viewer, Wired
from hub.core.states import InboxStatus
from hub.errors import NotFound
from hub.services.inbox import recent, reopen
from hub.store.db import transaction
from hub.store.models import InboxEvent

router = APIRouter(tags=["events"])
EventId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Inbox event id.")]
MAX_OFFSET = 2_147_483_647  # beyond any inbox; a larger value overflows SQLite's integer
# JSON shown deeper than this is elided (rows stored before the intake bounds could be
# nested ~1,000 deep, which the response serializer cannot walk)
SHOWN_DEPTH = 48
ELIDED = "…(nested too deep to show)"


def shown(value: Any, depth: int = 0) -> Any:
    """``value`` with anything nested deeper than :data:`SHOWN_DEPTH` replaced by a marker."""
    if isinstance(value, dict):
        if depth >= SHOWN_DEPTH:
            return ELIDED
        return {str(k): shown(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= SHOWN_DEPTH:
            return ELIDED
        return [shown(v, depth + 1) for v in value]
    return value


class EventSummary(BaseModel):
    """One inbox event."""

    id: int
    source: str
    vendor: str
    kind: str
    dedupe_key: str
    occurred_at: datetime
    received_at: datetime
    via: str
    client: str | None = Field(description="The vendor's client id, as the event named it.")
    hub_client: str | None = Field(description="The hub client it resolved to (None while "
                                   "unlinked or not processed yet).")
    subject: str | None
    status: str
    attempts: int
    matched: list[str]


class EventDetail(EventSummary):
    """An event with its normalized data and what processing did."""

    data: dict[str, Any]
    result: dict[str, Any] | None
    last_error: str | None
    processed_at: datetime | None


def _summary(row: InboxEvent) -> dict[str, Any]:
    return {
        "id": row.id, "source": row.source, "vendor": row.vendor, "kind": row.kind,
        "dedupe_key": row.dedupe_key, "occurred_at": row.occurred_at,
        "received_at": row.received_at, "via": row.via, "client": row.client_key,
        "hub_client": row.hub_client,
        "subject": f"{row.subject_type}:{row.subject_id}" if row.subject_id else None,
        "status": row.status, "attempts": row.attempts,
        "matched": list((row.result or {}).get("matched", [])),
    }


@router.get("/api/events", response_model=list[EventSummary])
def list_events(
    ctx: Hub, _who: Viewer,
    source: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    status: InboxStatus | None = None,
    client: Annotated[str | None, Query(max_length=200,
                                        description="Hub client key.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict[str, Any]]:
    """Recent inbox events, newest first."""
    with ctx.sessions() as session:
        return [_summary(r) for r in recent(session, status=status, source=source, kind=kind,
                                           client=client, limit=limit, offset=offset)]


@router.get("/api/events/{event_id}", response_model=EventDetail)
def get_event(event_id: EventId, ctx: Hub, _who: Viewer) -> dict[str, Any]:
    """One event: its data, matched rules, actions taken and errors."""
    with ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        if row is None:
            raise NotFound(f"event {event_id} does not exist")
        return {**_summary(row), "data": shown(row.data), "result": shown(row.result),
                "last_error": row.last_error, "processed_at": row.processed_at}


@router.post("/api/events/{event_id}/replay", response_model=EventDetail, status_code=202)
def replay_event(event_id: EventId, ctx: Hub, rt: Wired, _who: Admin) -> dict[str, Any]:
    """Run one stored event through the current rules again.

    Effects stay idempotent: a ticket never launches the same playbook twice and a
    finished step is not ticked again, so a replay only adds what is missing.
    """
    with transaction(ctx.sessions) as session:
        row = reopen(session, event_id)
        detail = {**_summary(row), "data": shown(row.data), "result": shown(row.result),
                  "last_error": None, "processed_at": row.processed_at}
    rt.dispatch.event(event_id)
    return detail
