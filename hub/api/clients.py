"""/api/clients: the client directory — hub clients, their links, unlinked vendor records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from hub.api.auth import Hub, Manager, Viewer, Wired
from hub.api.errors import ApiError
from hub.api.schemas import Required, StrictBody, Text
from hub.config.clients import KEY, OBJECT_TYPES
from hub.core.linking.proposals import THRESHOLD
from hub.errors import NotFound
from hub.services.linking import check, report_dict, suggestions, suggestions_dict
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


class CandidateOut(BaseModel):
    """Another client the record may be."""

    client: str
    client_name: str | None
    confidence: float
    reasons: list[str]


class SuggestionOut(BaseModel):
    """The proposed client for one unlinked vendor record (nothing is linked)."""

    source: str
    type: str
    vendor_id: str
    vendor_name: str | None
    psa_vendor: str | None
    psa_company_id: str | None
    psa_company_name: str | None
    verdict: str = Field(description="suggested | ambiguous | weak | none")
    confidence: float
    client: str | None
    client_name: str | None
    reasons: list[str]
    alternatives: list[CandidateOut]
    provisional_client: str | None = Field(
        description="The provisional client the record is linked to now, if any.")
    link_command: str | None


class SourceErrorOut(BaseModel):
    """A source that could not be listed."""

    source: str
    error: str


class SuggestionsOut(BaseModel):
    """Link proposals for the unlinked records of every source that lists its records."""

    threshold: float
    already_linked: int
    sources: list[str]
    errors: list[SourceErrorOut]
    proposals: list[SuggestionOut]


class DriftOut(BaseModel):
    """A stored link the vendor now shows renamed, deleted or moved."""

    kind: str = Field(description="renamed | deleted | moved")
    client: str
    source: str
    type: str
    vendor_id: str
    linked_name: str | None
    now_name: str | None
    now_client: str | None
    detail: str


class DriftReportOut(BaseModel):
    """Stored links compared with what the sources list now."""

    checked: int
    unchecked_sources: list[str]
    sources: list[str]
    errors: list[SourceErrorOut]
    drift: list[DriftOut]


SourceQuery = Annotated[str | None, Query(max_length=100, description="Only this source.")]


@router.get("/suggestions", response_model=SuggestionsOut)
def link_suggestions(
        ctx: Hub, rt: Wired, _who: Manager, source: SourceQuery = None,
        kind: Annotated[str | None, Query(pattern="^(rmm|psa)$")] = None,
        min_confidence: Annotated[float, Query(ge=0, le=1)] = THRESHOLD) -> dict[str, Any]:
    """Proposed clients for unlinked RMM sites/organizations (and PSA companies, unless
    ``kind=rmm``); reads each vendor now and links nothing: accept one with
    ``POST /api/clients/{key}/links``."""
    with ctx.sessions() as session:
        return suggestions_dict(suggestions(session, ctx.clients, rt.sources, only=source,
                                            kind=kind, threshold=min_confidence))


@router.get("/drift", response_model=DriftReportOut)
def link_drift(ctx: Hub, rt: Wired, _who: Manager, source: SourceQuery = None) -> dict[str, Any]:
    """Links whose vendor record is now renamed, deleted or moved (reads each vendor now)."""
    with ctx.sessions() as session:
        return report_dict(check(session, ctx.clients, rt.sources, only=source))


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
