"""A worker killed with SIGKILL mid-batch: every event still has exactly one effect."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.e2e.harness import FaultProxy, Hub, Psa, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TICKETS = 200
LEASE_SECONDS = 3.0  # the worker's outbox lease (60 s in production), MSPHUB_OUTBOX_LEASE_SECONDS
NOTES_PATH = r"/service/tickets/\d+/notes$"


def test_worker_killed_mid_batch_leaves_exactly_one_effect_per_event(
        pg_url: str, e2e_redis_url: str, psa: Psa, proxy: FaultProxy,
        make_hub: Callable[..., Hub]) -> None:
    """200 leaver tickets; the only worker is SIGKILLed after some but not all launch notes
    arrived — while at least one note the PSA already stored is waiting for its answer, so
    the hub never learned it was posted. A new worker picks the unfinished items up at
    start. Result: 200 runs, one per ticket; exactly one launch note on every ticket (the
    uncertain sends were found by their marker, not posted again); no inbox item pending;
    no outbox item pending or sending."""
    # Given the hub on Redis + PostgreSQL with one worker, talking to the PSA through a hop
    # that holds back the answer to every note POST for a moment after the PSA stored it
    hub = make_hub(postgres=True, redis_url=e2e_redis_url, site=proxy.url)
    hub.serve()
    first_worker = hub.worker(lease_seconds=LEASE_SECONDS)
    hub.register_callbacks()
    client = psa.new_client()
    proxy.add("POST", NOTES_PATH, "apply_then_hang", seconds=0.3, times=None)

    # When 200 leaver tickets are opened (200 callbacks land in the inbox)
    tickets = [psa.leaver_ticket(client, summary=f"Leaver {i}") for i in range(TICKETS)]

    def stored() -> int:
        return sum(1 for t in tickets if psa.notes(t))

    # and the worker is SIGKILLed mid-batch, while a stored note's answer is in flight
    wait_until(lambda: stored() >= 20 and proxy.applied_unanswered > 0, timeout=60,
               interval=0.01, what="a mid-batch moment to kill the worker", detail=hub.detail)
    first_worker.kill()
    notes_at_kill = stored()
    assert 0 < notes_at_kill < TICKETS, notes_at_kill
    proxy.clear()
    sending = hub.rows("SELECT key, ticket_id, remote_id FROM outbox_notes "
                       "WHERE status = 'sending'")
    # notes the PSA has, of which the hub never saw the answer (no remote id recorded)
    orphaned = [key for key, ticket, remote in sending
                if remote is None and key in psa.markers(int(ticket))]
    assert orphaned, f"no stored-but-unconfirmed note at the kill ({hub.state()})"
    pending_events = hub.statuses("inbox_events").get("pending", 0)

    # When a new worker starts after the dead worker's leases ran out
    def leases_expired() -> bool:
        return not hub.scalar(
            "SELECT count(*) FROM outbox_notes WHERE status = 'sending' "
            "AND next_attempt_at > now()")

    wait_until(leases_expired, timeout=LEASE_SECONDS + 10, what="the dead worker's leases "
               "to expire", detail=hub.detail)
    started = time.monotonic()
    second_worker = hub.worker(lease_seconds=LEASE_SECONDS)

    # Then every event is processed and every note delivered, exactly once
    psa.wait_for_notes(tickets, 1, timeout=90, detail=hub.detail)
    wait_until(lambda: hub.statuses("inbox_events") == {"done": TICKETS}
               and hub.statuses("outbox_notes") == {"sent": TICKETS}, timeout=30,
               what="inbox all done and outbox all sent", detail=hub.detail)
    recovery = time.monotonic() - started
    runs = hub.runs_per_ticket()
    assert len(runs) == TICKETS and set(runs.values()) == {1}
    assert set(runs) == {str(t) for t in tickets}
    per_ticket = Counter(len(psa.markers(t)) for t in tickets)
    assert per_ticket == {1: TICKETS}, per_ticket
    assert all(len(psa.notes(t)) == 1 for t in tickets)
    keys = {row[0] for row in hub.rows("SELECT key FROM outbox_notes")}
    assert {m for t in tickets for m in psa.markers(t)} == keys
    # the orphaned sends were recognised on the ticket, not posted a second time
    found = second_worker.log_events("note_found_after_uncertain_send")
    key_of = dict(hub.rows("SELECT id, key FROM outbox_notes"))
    found_keys = {key_of[r["note_id"]] for r in found}
    assert set(orphaned) <= found_keys, (orphaned, found_keys, second_worker.tail())
    assert all(psa.note_posts(int(t)) == 1 for _, t, _ in sending)
    print(f"\ncrash: killed after {notes_at_kill}/{TICKETS} notes with {pending_events} events "
          f"pending and {len(sending)} notes sending ({len(orphaned)} stored at the PSA); "
          f"recovered in {recovery:.1f}s; {len(found)} found by marker")

