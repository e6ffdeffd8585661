"""A PSA that answers 500 and then times out receives exactly one copy of each note."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.harness import FaultProxy, Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

TIMEOUT = 1.0  # the connector's timeout_seconds
SLOW = 1.5  # how long the PSA stalls: beyond the timeout
NOTES = r"/service/tickets/\d+/notes$"


def _warm_up(hub: Hub, psa: Psa) -> dict[str, int]:
    """Start the hub, register callbacks, and pass one leaver ticket through normally
    (the signing key is fetched and cached, so later PSA calls are note calls only)."""
    hub.serve()
    hub.register_callbacks()
    client = psa.new_client()
    ticket = psa.leaver_ticket(client, summary="Leaver: warm-up")
    psa.wait_for_notes([ticket], 1, timeout=20, detail=hub.detail)
    return client


def _note_row(hub: Hub, ticket: int) -> tuple[str, int, bool]:
    [(status, attempts, uncertain)] = hub.rows(
        "SELECT status, attempts, uncertain FROM outbox_notes WHERE ticket_id = :t",
        t=str(ticket))
    return status, attempts, bool(uncertain)


def test_sandbox_500_then_timeout_one_copy(psa: Psa, make_hub: Callable[..., Hub]) -> None:
    """With the sandbox's own switches: the note POST is answered 500, then the PSA is
    slower than the connector timeout when the hub checks the ticket for the note's marker.
    The hub treats the 500 as "may have been applied", retries the timed-out check, and
    posts the note once. (The sandbox applies its switches *before* storing, so here the
    500 and the timeout never stored anything: see the proxy test for a PSA that did.)"""
    # Given an embedded hub whose ConnectWise timeout is 1 s, and no polling
    hub = make_hub(timeout_seconds=TIMEOUT)
    client = _warm_up(hub, psa)

    # When the PSA answers the launch note's POST with 500
    psa.cw.fail_next(1, status=500)
    ticket = psa.leaver_ticket(client, summary="Leaver: 500 then timeout")
    wait_until(lambda: psa.note_posts(ticket) >= 1, timeout=20, what="the first note POST",
               detail=hub.detail)
    assert psa.notes(ticket) == []
    # and is slower than the timeout when the hub comes back to look for the note
    psa.cw.set_delay(int(SLOW * 1000))
    # (two checks seen: the first surely took the delay, whatever the second took)
    wait_until(lambda: psa.note_reads(ticket) >= 2, timeout=20, what="the marker checks",
               detail=hub.detail)
    psa.cw.set_delay(0)  # the PSA recovers

    # Then the note arrives exactly once
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    wait_until(lambda: _note_row(hub, ticket)[0] == "sent", timeout=10, what="note sent",
               detail=hub.detail)
    assert len(psa.notes(ticket)) == 1 and len(psa.markers(ticket)) == 1
    assert psa.note_posts(ticket) == 2  # the refused one and the one that stored it
    assert psa.note_reads(ticket) >= 2  # timed-out check(s) and the one that answered
    [serve] = hub.procs
    timeouts = [r for r in serve.log_events("http_retry")
                if r.get("method") == "GET" and r.get("status") is None]
    assert timeouts, serve.tail()  # the hub did see the check time out, and retried it
    status, attempts, uncertain = _note_row(hub, ticket)
    assert (status, uncertain) == ("sent", True) and attempts >= 2
    assert hub.runs_per_ticket()[str(ticket)] == 1


def test_psa_that_stored_the_note_then_500_then_timeout_gets_one_copy(
        psa: Psa, proxy: FaultProxy, make_hub: Callable[..., Hub]) -> None:
    """Between hub and sandbox a proxy makes the failures a real PSA has after it stored
    a note: the POST is applied and answered 500, then the marker check times out; and,
    for a second ticket, the POST is applied but its answer is lost (timeout). Each note
    is on its ticket exactly once and was POSTed exactly once: every retry found the
    note by its marker instead of posting it again."""
    # Given an embedded hub (timeout 1 s, no polling) that reaches the PSA through the proxy
    hub = make_hub(timeout_seconds=TIMEOUT, site=proxy.url)
    client = _warm_up(hub, psa)

    # When the PSA stores the launch note but answers 500, and then stalls beyond the
    # timeout when the hub checks the ticket for the note
    proxy.add("POST", NOTES, "apply_then_500")
    proxy.add("GET", NOTES, "hang_then_forward", seconds=SLOW)
    first = psa.leaver_ticket(client, summary="Leaver: stored, 500, then timeout")
    # and, for another ticket, stores the note but its answer never arrives in time
    wait_until(lambda: proxy.fired["hang_then_forward"] == 1, timeout=20,
               what="the timed-out marker check", detail=hub.detail)
    proxy.add("POST", NOTES, "apply_then_hang", seconds=SLOW)
    second = psa.leaver_ticket(client, summary="Leaver: stored, answer lost")

    # Then each ticket has its launch note exactly once, posted exactly once
    psa.wait_for_notes([first, second], 1, timeout=30, detail=hub.detail)
    for ticket in (first, second):
        wait_until(lambda t=ticket: _note_row(hub, t)[0] == "sent", timeout=20,
                   what=f"note of ticket {ticket} sent", detail=hub.detail)
        assert len(psa.notes(ticket)) == 1 and len(psa.markers(ticket)) == 1
        assert psa.note_posts(ticket) == 1, ticket
        status, attempts, uncertain = _note_row(hub, ticket)
        assert (status, uncertain) == ("sent", True) and attempts >= 2
    assert dict(proxy.fired) == {"apply_then_500": 1, "hang_then_forward": 1,
                                 "apply_then_hang": 1}
    assert psa.note_reads(first) >= 2  # the stalled check, then the one that found it
    [serve] = hub.procs
    assert any(r.get("method") == "GET" and r.get("status") is None
               for r in serve.log_events("http_retry")), serve.tail()  # the check timed out
    found = serve.log_events("note_found_after_uncertain_send")
    assert {r["ticket"] for r in found} == {str(first), str(second)}, serve.tail()
