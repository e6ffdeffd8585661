"""Sandbox PSA and hub over real HTTP, embedded mode (one ``msphub serve``, SQLite)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.harness import Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

POLL_INTERVAL = 2  # seconds, the source's reconciliation poll
STORM_TICKETS = 10
STORM_429S = 30


def test_dropped_callback_and_429_storm_every_note_once(
        psa: Psa, make_hub: Callable[..., Hub]) -> None:
    """Embedded hub on SQLite, talking to the sandbox over HTTP. A callback the PSA never
    delivered is caught by the reconciliation poll within one poll interval; a storm of
    429s (Retry-After: 1) while launch notes are being delivered is waited out, and every
    note still arrives exactly once."""
    # Given one `msphub serve` (API, workers and scheduler in-process) polling every 2 s
    hub = make_hub(poll={"enabled": True, "interval": f"{POLL_INTERVAL}s",
                         "streams": ["tickets"]})
    hub.serve()
    hub.register_callbacks()
    client = psa.new_client()
    # and a leaver ticket that arrives by callback as usual
    normal = psa.leaver_ticket(client, summary="Leaver: first")
    psa.wait_for_notes([normal], 1, timeout=20, detail=hub.detail)
    assert hub.scalar("SELECT via FROM inbox_events WHERE subject_id = :t",
                      t=str(normal)) == "webhook"

    # When the PSA drops the callback of the next leaver ticket
    psa.cw.drop_callbacks(next=1)
    created = time.monotonic()
    dropped = psa.leaver_ticket(client, summary="Leaver: callback lost")
    assert psa.cw.dropped == 1
    # Then the reconciliation poll finds the ticket within one poll interval
    psa.wait_for_notes([dropped], 1, timeout=4 * POLL_INTERVAL + 10, detail=hub.detail)
    latency = time.monotonic() - created
    [(via, received)] = hub.rows("SELECT via, received_at FROM inbox_events "
                                 "WHERE subject_id = :t", t=str(dropped))
    ticket_entered = psa.cw.ticket(dropped)["_info"]["dateEntered"]
    assert via == "poll"
    caught_after = _parse_db_time(received) - _parse_cw_time(ticket_entered)
    # at most one interval until the next poll, + up to 1 s of scheduler tick, + up to 1 s
    # of CW's whole-second timestamps, + the poll request itself
    assert caught_after <= timedelta(seconds=POLL_INTERVAL + 2.5), caught_after
    assert hub.runs_per_ticket()[str(dropped)] == 1
    assert len(psa.markers(dropped)) == 1

    # When the PSA answers the next 30 API calls with 429 Retry-After: 1 while the launch
    # notes of 10 new leaver tickets are being delivered
    psa.cw.fail_next(STORM_429S, status=429, retry_after=1)
    stormed = [psa.leaver_ticket(client, summary=f"Leaver: storm {i}")
               for i in range(STORM_TICKETS)]
    # Then the storm is waited out and every ticket has exactly one launch note
    psa.wait_for_notes(stormed, 1, timeout=90, detail=hub.detail)
    tickets = [normal, dropped, *stormed]
    wait_until(lambda: hub.statuses("outbox_notes") == {"sent": len(tickets)}, timeout=30,
               what="every note sent", detail=hub.detail)
    assert psa.cw.next_gate_action()[1] is None, "the storm was not used up"
    assert Counter(len(psa.markers(t)) for t in tickets) == {1: len(tickets)}
    assert all(len(psa.notes(t)) == 1 for t in tickets)
    assert hub.runs_per_ticket() == {str(t): 1 for t in tickets}
    # the storm hit note deliveries: some note POSTs were refused and later re-sent
    posts = sum(psa.note_posts(t) for t in stormed)
    assert posts > STORM_TICKETS, posts
    assert hub.statuses("inbox_events") == {"done": len(tickets)}
    print(f"\nembedded: dropped callback caught by poll after {caught_after} "
          f"({latency:.1f}s to its note); storm: {posts} note POSTs for "
          f"{STORM_TICKETS} notes")



def _parse_cw_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _parse_db_time(value: object) -> datetime:
    if isinstance(value, str):  # SQLite through a plain text query
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
