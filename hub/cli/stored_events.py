"""Reading stored inbox events for read-only commands (dry runs, stats), with the words a
fresh database deserves: "no events yet" instead of an empty table."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.cli.app import context, fail
from hub.core.events import Event
from hub.services.context import HubContext
from hub.services.directory import hub_ref
from hub.services.inbox import to_event
from hub.store.models import InboxEvent


def empty_inbox_message(ctx: HubContext) -> str | None:
    """What to say when the database holds no event at all (a fresh or wrong database),
    naming it; None when there are events."""
    with ctx.sessions() as session:
        if session.execute(select(func.count()).select_from(InboxEvent)).scalar_one():
            return None
    url = ctx.engine.url.render_as_string(hide_password=True)
    return (f"the database has no events yet ({url}): nothing has arrived from a webhook "
            "or a poll. Is MSPHUB_DATABASE_URL (or --data-dir) the hub's database?")


def stored_event(event_id: int) -> Event:
    """A stored inbox event as the pipeline sees it: rebuilt from its row, with the hub
    client its vendor record is linked to now (looked up, never created).

    Exits (code 2) when the event does not exist, saying so plainly on an empty database.
    """
    ctx = context(migrate=True)
    with ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        if row is None:
            fail(empty_inbox_message(ctx) or f"event {event_id} does not exist", 2)
        event = to_event(row)
        if event.client is not None:
            client = ctx.clients.linked(session, event.source, event.client)
            if client is not None:
                event = event.model_copy(update={"hub_client": hub_ref(client)})
    return event
