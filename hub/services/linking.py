"""Link suggestions and drift checks: what each source lists now against the client directory.

Sources whose connector is a ``connectors.base.Directory`` (Datto RMM sites, …) list their
linkable records; the pure matching in ``hub.core.linking`` proposes a client for each
record nobody has linked yet, or reports the stored links the vendor now shows renamed,
deleted or moved. Nothing here links: an admin accepts a proposal with
``msphub clients link`` (the printed command) or ``POST /api/clients/{key}/links``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, Directory, Linkable
from hub.core.linking.drift import Drift, drift
from hub.core.linking.proposals import (
    FLOOR,
    THRESHOLD,
    Candidate,
    ClientCard,
    KnownLink,
    Proposal,
    Record,
    suggest,
)
from hub.errors import NotFound
from hub.services.directory import ClientDirectory
from hub.services.sources import Sources

log = structlog.get_logger()
Ident = tuple[str, str, str]  # (source, type, vendor id)


@dataclass(frozen=True)
class Listing:
    """What one source lists now, or why it could not be read."""

    source: str
    vendor: str
    records: tuple[Record, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Suggestions:
    """Proposals for the unlinked records of the listed sources."""

    proposals: list[Proposal]
    listings: list[Listing]
    threshold: float
    already_linked: int = 0
    provisional: Mapping[Ident, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport:
    """Stored links the listed sources now show differently."""

    drift: list[Drift]
    listings: list[Listing]
    checked: int  # links to records of the listed sources
    unchecked_sources: list[str]  # sources of links that could not be listed


def record_of(source: str, item: Linkable) -> Record:
    """The core's view of a connector's linkable record."""
    return Record(source=source, type=item.type, id=item.id, name=item.name,
                  psa_vendor=item.psa_vendor, psa_company_id=item.psa_company_id,
                  psa_company_name=item.psa_company_name)


def list_records(sources: Sources, *, only: str | None = None,
                 kind: str | None = None) -> list[Listing]:
    """Every Directory source's records now (one vendor listing each; I/O); ``kind``:
    only sources whose connector is of this kind (``rmm``: sites and organizations).

    A source that fails is reported in its listing (``error``) and logged; the others
    still count.

    Raises:
        NotFound: ``only`` names no configured source, or one that cannot list records.
    """
    chosen = [s for s in sources if (only is None or s.name == only)
              and (kind is None or s.connector.manifest.kind == kind)]
    if only is not None and not chosen:
        raise NotFound(f"no configured source is named '{only}' (config/connectors.yaml)")
    listings: list[Listing] = []
    for src in chosen:
        connector = src.connector
        if not isinstance(connector, Directory):
            if only is not None:
                raise NotFound(f"source '{only}' ({src.vendor}) cannot list its records")
            continue
        try:
            items = connector.linkables()
        except ConnectorError as exc:
            log.warning("linkables_failed", source=src.name, error=exc.message)
            listings.append(Listing(src.name, src.vendor,
                                    error=f"{type(exc).__name__}: {exc.message}"))
            continue
        listings.append(Listing(src.name, src.vendor,
                                tuple(record_of(src.name, x) for x in items)))
    return listings


def client_cards(session: Session, directory: ClientDirectory,
                 vendors: Mapping[str, str]) -> tuple[list[ClientCard], dict[Ident, str],
                                                      dict[Ident, str]]:
    """The directory as matching sees it.

    Returns:
        The real (non-provisional) clients with their links; every linked record's
        client key; the records linked only to a provisional client (still unlinked for
        suggestions: linking one to a real client moves it there).
    """
    cards: list[ClientCard] = []
    linked: dict[Ident, str] = {}
    provisional: dict[Ident, str] = {}
    for row in directory.all(session):
        links = tuple(KnownLink(x.source, x.object_type, x.vendor_id, x.vendor_name,
                                vendors.get(x.source)) for x in row.links)
        for x in links:
            (provisional if row.provisional else linked)[(x.source, x.type, x.id)] = row.key
        if not row.provisional:
            cards.append(ClientCard(row.key, row.name, links))
    return cards, linked, provisional


def suggestions(session: Session, directory: ClientDirectory, sources: Sources, *,
                only: str | None = None, kind: str | None = None,
                threshold: float = THRESHOLD, floor: float = FLOOR) -> Suggestions:
    """Proposals for every listed record no real client is linked to (links nothing)."""
    listings = list_records(sources, only=only, kind=kind)
    vendors = {s.name: s.vendor for s in sources}
    cards, linked, provisional = client_cards(session, directory, vendors)
    records = [r for x in listings for r in x.records]
    unlinked = [r for r in records if (r.source, r.type, r.id) not in linked]
    proposals = suggest(unlinked, cards, threshold=threshold, floor=floor)
    listed = {(r.source, r.type, r.id) for r in unlinked}
    return Suggestions(proposals, listings, threshold, len(records) - len(unlinked),
                       {k: v for k, v in provisional.items() if k in listed})


def check(session: Session, directory: ClientDirectory, sources: Sources, *,
          only: str | None = None) -> DriftReport:
    """Stored links the vendors now show renamed, deleted or moved (changes nothing)."""
    listings = list_records(sources, only=only)
    vendors = {s.name: s.vendor for s in sources}
    cards, _linked, _provisional = client_cards(session, directory, vendors)
    complete = {x.source: x.records for x in listings if x.error is None}
    found = drift(cards, complete)
    links = [x for c in cards for x in c.links]
    checked = sum(1 for x in links if x.source in complete)
    wanted = {x.source for x in links if only is None or x.source == only}
    unchecked = sorted(wanted - set(complete))
    return DriftReport(found, listings, checked, unchecked)


# ---- JSON shapes (CLI --json and the API) ---------------------------------------------


def link_command(proposal: Proposal) -> str | None:
    """The command that accepts a proposal."""
    if proposal.best is None:
        return None
    r = proposal.record
    args = ["msphub", "clients", "link", proposal.best.client, r.source, r.type, r.id]
    if r.name:
        args += ["--name", r.name]
    return shlex.join(args)


def _candidate(c: Candidate) -> dict[str, Any]:
    return {"client": c.client, "client_name": c.client_name, "confidence": c.confidence,
            "reasons": list(c.reasons)}


def proposal_dict(p: Proposal, provisional: Mapping[Ident, str]) -> dict[str, Any]:
    """One proposal as JSON."""
    r = p.record
    return {"source": r.source, "type": r.type, "vendor_id": r.id, "vendor_name": r.name,
            "psa_vendor": r.psa_vendor, "psa_company_id": r.psa_company_id,
            "psa_company_name": r.psa_company_name, "verdict": str(p.verdict),
            "confidence": p.confidence,
            "client": p.best.client if p.best else None,
            "client_name": p.best.client_name if p.best else None,
            "reasons": list(p.best.reasons) if p.best else [],
            "alternatives": [_candidate(c) for c in p.alternatives],
            "provisional_client": provisional.get((r.source, r.type, r.id)),
            "link_command": link_command(p)}


def listing_errors(listings: Sequence[Listing]) -> list[dict[str, str]]:
    """The sources that could not be read, with why."""
    return [{"source": x.source, "error": x.error} for x in listings if x.error]


def suggestions_dict(s: Suggestions) -> dict[str, Any]:
    """The whole suggestion report as JSON."""
    return {"threshold": s.threshold, "already_linked": s.already_linked,
            "sources": [x.source for x in s.listings if x.error is None],
            "errors": listing_errors(s.listings),
            "proposals": [proposal_dict(p, s.provisional) for p in s.proposals]}


def drift_dict(d: Drift) -> dict[str, Any]:
    """One drifted link as JSON."""
    return {"kind": str(d.kind), "client": d.client, "source": d.link.source,
            "type": d.link.type, "vendor_id": d.link.id, "linked_name": d.link.name,
            "now_name": d.now_name, "now_client": d.now_client, "detail": d.detail}


def report_dict(r: DriftReport) -> dict[str, Any]:
    """The whole drift report as JSON."""
    return {"checked": r.checked, "unchecked_sources": r.unchecked_sources,
            "sources": [x.source for x in r.listings if x.error is None],
            "errors": listing_errors(r.listings), "drift": [drift_dict(d) for d in r.drift]}
