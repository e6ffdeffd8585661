"""The client directory: hub clients and the vendor records (PSA companies, RMM sites) they are.

Rules, runs, team overrides, calendars, schedules, the dashboard and the audit trail
speak hub client keys. A vendor id appears only in a link and in an event's ``client``;
the pipeline resolves one to the other before any rule runs. Links are made by admins
(``config/clients.yaml``, the CLI, the API); the hub never links on its own, except to
a *provisional* client when the deployment opts in (``MSPHUB_PROVISIONAL_CLIENTS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from hub.config.clients import ClientSpec, check_key
from hub.core.checklists.engine import Fact
from hub.core.events import ClientRef, HubClientRef
from hub.errors import ConfigError, NotAllowed, NotFound
from hub.store import audit
from hub.store.db import insert_ignore
from hub.store.models import Client, ClientLink, InboxEvent

log = structlog.get_logger()
CONFIG = "config"  # created_by of links that config/clients.yaml declares
PROVISIONAL = "provisional"
_SLUG = re.compile(r"[^a-z0-9._-]+")
_SEEN = "msphub_clients_by_key"  # session.info: client rows this session already read
_LINKED = "msphub_clients_by_link"  # … and by the vendor record linked to them


@dataclass(frozen=True)
class VendorClient:
    """A vendor record some events named that no hub client is linked to."""

    source: str
    type: str
    id: str
    name: str | None
    events: int
    last_seen: datetime


def hub_ref(row: Client) -> HubClientRef:
    """The hub client as events and rules see it."""
    return HubClientRef(key=row.key, name=row.name, tags=tuple(row.tags or ()))


def provisional_key(source: str, ref: ClientRef) -> str:
    """``cw-prod-company-19300``: a readable key no admin-chosen key is likely to take."""
    return check_key(_SLUG.sub("-", f"{source}-{ref.type}-{ref.id}".lower()).strip("-")[:200])


class ClientDirectory:
    """Finds, creates and links hub clients inside the caller's transaction."""

    def __init__(self, *, clock: Callable[[], datetime], provisional: bool = False) -> None:
        self.clock = clock
        self.provisional = provisional

    # ---- reading ---------------------------------------------------------------------

    def get(self, session: Session, key: str) -> Client:
        """The hub client with this key.

        Raises:
            NotFound: no such client.
        """
        row = session.execute(select(Client).where(Client.key == key)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"client '{key}' is not in the directory")
        return row

    def find(self, session: Session, key: str) -> Client | None:
        """The hub client with this key, if there is one (once per session and key)."""
        seen: dict[str, Client] = session.info.setdefault(_SEEN, {})
        row = seen.get(key)
        if row is None:
            row = session.execute(select(Client).where(Client.key == key)).scalar_one_or_none()
            if row is not None:
                seen[key] = row
        return row

    def forget(self, session: Session) -> None:
        """Drop the rows this session remembers (after a savepoint rolled back)."""
        session.info.pop(_SEEN, None)
        session.info.pop(_LINKED, None)

    def all(self, session: Session, *, tag: str | None = None,
            include_provisional: bool = True) -> list[Client]:
        """Every hub client (optionally with a tag), by key."""
        stmt = select(Client).order_by(Client.key)
        if not include_provisional:
            stmt = stmt.where(Client.provisional.is_(False))
        rows = list(session.execute(stmt).scalars())
        return [r for r in rows if tag is None or tag in (r.tags or ())]

    def linked(self, session: Session, source: str, ref: ClientRef) -> Client | None:
        """The hub client linked to this vendor record, if any (once per session)."""
        by_link: dict[tuple[str, str, str], Client] = session.info.setdefault(_LINKED, {})
        cached = by_link.get((source, ref.type, ref.id))
        if cached is not None:
            return cached
        row = session.execute(
            select(Client).join(ClientLink, ClientLink.client_id == Client.id)
            .where(ClientLink.source == source, ClientLink.object_type == ref.type,
                   ClientLink.vendor_id == ref.id)
        ).scalar_one_or_none()
        if row is not None:
            session.info.setdefault(_SEEN, {})[row.key] = row
            by_link[(source, ref.type, ref.id)] = row
        return row

    def resolve(self, session: Session, source: str, ref: ClientRef | None) -> Client | None:
        """The hub client an event's vendor client is; None when it is not linked.

        With provisional clients enabled an unlinked record gets one (flagged
        ``provisional``, audited), which an admin can later rename or fold into a
        real client by linking the record there.
        """
        if ref is None:
            return None
        row = self.linked(session, source, ref)
        if row is not None or not self.provisional:
            return row
        key = provisional_key(source, ref)
        row = self.ensure(session, key, ref.name, provisional=True)
        self.link(session, key, source, ref.type, ref.id, name=ref.name, by=PROVISIONAL)
        log.info("client_provisioned", client=key, source=source, type=ref.type,
                 vendor_id=ref.id)
        return row

    def unlinked(self, session: Session, *, limit: int = 200) -> list[VendorClient]:
        """Vendor records named by stored events that no hub client is linked to."""
        has_link = exists().where(and_(ClientLink.source == InboxEvent.source,
                                       ClientLink.object_type == InboxEvent.client_type,
                                       ClientLink.vendor_id == InboxEvent.client_key))
        rows = session.execute(
            select(InboxEvent.source, InboxEvent.client_type, InboxEvent.client_key,
                   func.max(InboxEvent.client_name), func.count(), func.max(InboxEvent.received_at))
            .where(InboxEvent.client_key.is_not(None), ~has_link)
            .group_by(InboxEvent.source, InboxEvent.client_type, InboxEvent.client_key)
            .order_by(func.max(InboxEvent.received_at).desc()).limit(limit)
        ).all()
        return [VendorClient(r[0], r[1] or "company", str(r[2]), r[3], int(r[4]), r[5])
                for r in rows]

    # ---- changing --------------------------------------------------------------------

    def ensure(self, session: Session, key: str, name: str | None = None, *,
               provisional: bool = False) -> Client:
        """The client with this key, created (without links) when it is new."""
        check_key(key)
        row = self.find(session, key)
        if row is None:
            # concurrent first launches for a new client: insert-or-ignore, then read
            insert_ignore(session, Client, {"key": key, "name": name, "created_at": self.clock(),
                                            "tags": [], "provisional": provisional}, ["key"])
            row = self.get(session, key)
        if name and not row.name:
            row.name = name
        return row

    def save(self, session: Session, key: str, *, name: str | None = None,
             calendar: str | None = None, tags: Sequence[str] | None = None,
             by: str) -> Client:
        """Create or update a client's name, calendar and tags (a real client from now on)."""
        row = self.ensure(session, key)
        before = _describe(row)
        if name is not None:
            row.name = name
        if calendar is not None:
            row.calendar = calendar or None
        if tags is not None:
            row.tags = sorted(set(tags))
        row.provisional = False
        after = _describe(row)
        if after != before:
            self._audit(session, "client_saved", by, {"client": key, **after})
        return row

    def link(self, session: Session, key: str, source: str, object_type: str, vendor_id: str,
             *, name: str | None = None, by: str) -> ClientLink:
        """Link a vendor record to a client.

        A record linked to a provisional client moves to this one; a record already
        linked to another real client is refused (unlink it there first).

        Raises:
            NotFound: no such client.
            NotAllowed: the record belongs to another client.
        """
        self.forget(session)  # what this session resolved may change now
        client = self.get(session, key)
        existing = session.execute(
            select(ClientLink).where(ClientLink.source == source,
                                     ClientLink.object_type == object_type,
                                     ClientLink.vendor_id == vendor_id)
        ).scalar_one_or_none()
        if existing is not None:
            if existing.client_id == client.id:
                if name and existing.vendor_name != name:
                    existing.vendor_name = name
                return existing
            if not existing.client.provisional:
                raise NotAllowed(f"{source} {object_type} {vendor_id} is already linked to "
                                 f"client '{existing.client.key}'; unlink it there first")
            old = existing.client.key
            existing.client = client
            existing.created_by = by
            self._audit(session, "client_linked", by, {"client": key, "source": source,
                        "type": object_type, "vendor_id": vendor_id, "moved_from": old})
            return existing
        link = ClientLink(source=source, object_type=object_type, vendor_id=vendor_id,
                          vendor_name=name, created_by=by, created_at=self.clock())
        client.links.append(link)
        session.flush()
        self._audit(session, "client_linked", by, {"client": key, "source": source,
                    "type": object_type, "vendor_id": vendor_id})
        return link

    def unlink(self, session: Session, source: str, object_type: str, vendor_id: str, *,
               by: str) -> str:
        """Remove the link of a vendor record; returns the client it belonged to.

        Raises:
            NotFound: the record is not linked.
        """
        self.forget(session)
        link = session.execute(
            select(ClientLink).where(ClientLink.source == source,
                                     ClientLink.object_type == object_type,
                                     ClientLink.vendor_id == vendor_id)
        ).scalar_one_or_none()
        if link is None:
            raise NotFound(f"{source} {object_type} {vendor_id} is not linked to any client")
        key = link.client.key
        link.client.links.remove(link)
        session.flush()
        self._audit(session, "client_unlinked", by, {"client": key, "source": source,
                    "type": object_type, "vendor_id": vendor_id})
        return key

    def apply(self, session: Session, specs: Sequence[ClientSpec], *, file: str) -> int:
        """Make the directory hold what ``config/clients.yaml`` declares; returns changes.

        The file is authoritative for the links it declares: a link it no longer lists
        is removed, while links made through the CLI or API stay.

        Raises:
            ConfigError: a declared record is linked to another real client already.
        """
        changes = 0
        for spec in specs:
            row = self.find(session, spec.key)
            if (row is None or row.name != spec.name or row.calendar != spec.calendar
                    or sorted(row.tags or ()) != sorted(set(spec.tags)) or row.provisional):
                self.save(session, spec.key, name=spec.name, calendar=spec.calendar or "",
                          tags=spec.tags, by=CONFIG)
                changes += 1
                row = self.get(session, spec.key)
            declared = {(x.source, x.type, x.id) for x in spec.links}
            for link in list(row.links):
                ident = (link.source, link.object_type, link.vendor_id)
                if link.created_by == CONFIG and ident not in declared:
                    self.unlink(session, *ident, by=CONFIG)
                    changes += 1
            have = {(x.source, x.object_type, x.vendor_id) for x in row.links}
            for x in spec.links:
                if (x.source, x.type, x.id) in have:
                    continue
                try:
                    self.link(session, spec.key, x.source, x.type, x.id, name=x.name, by=CONFIG)
                except NotAllowed as exc:
                    raise ConfigError(str(exc), file=file, key=f"clients.{spec.key}.links") \
                        from exc
                changes += 1
        return changes

    def _audit(self, session: Session, action: str, by: str, data: dict[str, Any]) -> None:
        audit.append(session, [Fact(action, by, self.clock(), data=data)], run_id=None)


def _describe(row: Client) -> dict[str, Any]:
    return {"name": row.name, "calendar": row.calendar, "tags": sorted(row.tags or ()),
            "provisional": bool(row.provisional)}
