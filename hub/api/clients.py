"""/api/clients: the client directory — hub clients, their links, unlinked vendor records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from hub.api.auth import Hub, Manager, Viewer
from hub.api.errors import ApiError
from hub.api.schemas import Required, StrictBody, Text
from hub.config.clients import KEY, OBJECT_TYPES
from hub.errors import NotFound
from hub.store.db import transaction
from hub.store.models import Client

router = APIRouter(prefix="/api/clients", tags=["clients"])
ClientKey = Annotated[str, Path(pattern=KEY.pattern, description="Hub client key.")]
ObjectType = Annotated[str, Field(pattern=f"^({'|'.join(OBJECT_TYPES)})$",
                                  description=f"One of {', '.join(OBJECT_TYPES)}.")]


class LinkOut(BaseModel):
    """One vendor record that is this client."""

    source: str
    type: str
    vendor_id: str
    vendor_name: str | None
    created_by: str
    created_at: datetime


class ClientOut(BaseModel):
    """A hub client."""

    key: str
    name: str | None
    calendar: str | None
    tags: list[str]
    provisional: bool
    links: list[LinkOut]


class ClientIn(StrictBody):
    """Create a client, or change its name, calendar and tags (fields left out stay)."""

    key: Required = Field(max_length=200, pattern=KEY.pattern, examples=["acme"])
    name: Text | None = Field(default=None, max_length=300)
    calendar: Text | None = Field(default=None, max_length=100,
                                  description="A calendars.yaml name.")
    tags: list[Annotated[Text, Field(max_length=100)]] | None = Field(default=None,
                                                                       max_length=50)


class LinkIn(StrictBody):
    """A PSA company or RMM site/organization to link to the client."""

    source: Required = Field(max_length=100, description="Connector instance name.")
    type: ObjectType = "company"
    vendor_id: Required = Field(max_length=200, description="The vendor's id of the record.")
    vendor_name: Text | None = Field(default=None, max_length=300)


class VendorClientOut(BaseModel):
    """A vendor record events named that no client is linked to."""

    source: str
    type: str
    vendor_id: str
    vendor_name: str | None
    events: int
    last_seen: datetime


def client_out(row: Client) -> dict[str, Any]:
    """The API shape of a client row."""
    return {"key": row.key, "name": row.name, "calendar": row.calendar,
            "tags": list(row.tags or ()), "provisional": bool(row.provisional),
            "links": [{"source": x.source, "type": x.object_type, "vendor_id": x.vendor_id,
                       "vendor_name": x.vendor_name, "created_by": x.created_by,
                       "created_at": x.created_at} for x in row.links]}


@router.get("", response_model=list[ClientOut])
def list_clients(ctx: Hub, _who: Viewer,
                 tag: Annotated[str | None, Query(max_length=100)] = None) -> list[dict[str, Any]]:
    """Every hub client with its links, by key."""
    with ctx.sessions() as session:
        return [client_out(r) for r in ctx.clients.all(session, tag=tag)]


@router.get("/unlinked", response_model=list[VendorClientOut])
def unlinked(ctx: Hub, _who: Viewer) -> list[dict[str, Any]]:
    """Vendor records stored events named that no client is linked to (newest first)."""
    with ctx.sessions() as session:
        return [{"source": v.source, "type": v.type, "vendor_id": v.id, "vendor_name": v.name,
                 "events": v.events, "last_seen": v.last_seen}
                for v in ctx.clients.unlinked(session)]


@router.get("/{key}", response_model=ClientOut)
def get_client(key: ClientKey, ctx: Hub, _who: Viewer) -> dict[str, Any]:
    """One client with its links."""
    with ctx.sessions() as session:
        return client_out(ctx.clients.get(session, key))


@router.post("", response_model=ClientOut)
def save_client(body: ClientIn, ctx: Hub, who: Manager) -> dict[str, Any]:
    """Create a client or change its name, calendar and tags (manager or admin)."""
    if body.calendar and body.calendar not in ctx.calendars:
        raise ApiError(422, "unknown_calendar", f"unknown calendar '{body.calendar}'; "
                       f"calendars.yaml defines {', '.join(sorted(ctx.calendars))}")
    with transaction(ctx.sessions) as session:
        row = ctx.clients.save(session, body.key, name=body.name, calendar=body.calendar,
                               tags=body.tags, by=who.actor)
        return client_out(row)


@router.post("/{key}/links", response_model=ClientOut, status_code=201)
def link(key: ClientKey, body: LinkIn, ctx: Hub, who: Manager) -> dict[str, Any]:
    """Link a vendor record to the client; 409 when another client has it."""
    with transaction(ctx.sessions) as session:
        ctx.clients.link(session, key, body.source, body.type, body.vendor_id,
                         name=body.vendor_name, by=who.actor)
        return client_out(ctx.clients.get(session, key))


@router.delete("/{key}/links/{source}/{object_type}/{vendor_id}", status_code=204)
def unlink(key: ClientKey, source: str, object_type: str, vendor_id: str, ctx: Hub,
           who: Manager) -> Response:
    """Remove the link of a vendor record from the client."""
    with transaction(ctx.sessions) as session:
        row = ctx.clients.get(session, key)
        if not any((x.source, x.object_type, x.vendor_id) == (source, object_type, vendor_id)
                   for x in row.links):
            raise NotFound(f"{source} {object_type} {vendor_id} is not linked to client '{key}'")
        ctx.clients.unlink(session, source, object_type, vendor_id, by=who.actor)
    return Response(status_code=204)
