"""The pipeline across real processes: ``msphub serve`` + 2 workers on Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.harness import SOURCE, Hub, Psa, wait_until
from tests.e2e.steps import approver_token, finish_step

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_leaver_ticket_redelivery_and_completion_over_redis_workers(
        pg_url: str, e2e_redis_url: str, psa: Psa, make_hub: Callable[..., Hub]) -> None:
    """Real broker, real worker processes: a leaver ticket launches exactly one run and
    one launch note; the identical signed callback delivered three times launches one run;
    completing the run through the REST API puts a note per step and the completion record
    (with its evidence document and the ticket status) on the PSA ticket."""
    # Given the hub as separate processes: HTTP only, plus two workers on Redis
    hub = make_hub(postgres=True, redis_url=e2e_redis_url, completed_status="Completed")
    hub.serve()
    workers = [hub.worker(), hub.worker()]
    hub.register_callbacks()
    client = psa.new_client()

    # When a technician opens a leaver ticket in the PSA (the sandbox calls the hub back)
    first = psa.leaver_ticket(client)
    psa.wait_for_notes([first], 1, timeout=30, detail=hub.detail)
    # Then one run is launched from it and one launch note is on the ticket
    assert hub.runs_per_ticket() == {str(first): 1}
    [launch] = psa.notes(first)
    assert "launched" in launch["text"] and "Leaver (user offboarding)" in launch["text"]
    assert len(psa.markers(first)) == 1

    # When the callback for a second leaver ticket is delivered three times, identically
    psa.capture_next_callback()
    second = psa.leaver_ticket(client, summary="Leaver: second")
    [(url, body, headers)] = wait_until(psa.captured, timeout=10, what="the captured callback")
    assert f"/webhooks/{SOURCE}" in url
    answers = [httpx.post(url, content=body, headers=headers, timeout=10, trust_env=False)
               for _ in range(3)]
    # Then the first is accepted, the redeliveries are recognised, and it acted once
    assert [a.status_code for a in answers] == [202, 200, 200], [a.text for a in answers]
    assert [a.json()["duplicates"] for a in answers] == [0, 1, 1]
    psa.wait_for_notes([second], 1, timeout=30, detail=hub.detail)
    wait_until(lambda: hub.statuses("inbox_events") == {"done": 2}, timeout=15,
               what="both inbox events done", detail=hub.detail)
    assert hub.runs_per_ticket() == {str(first): 1, str(second): 1}
    assert hub.scalar("SELECT count(*) FROM inbox_events WHERE subject_id = :t",
                      t=str(second)) == 1
    assert len(psa.notes(second)) == 1

    # When a technician completes every step of the first run through the REST API
    token = hub.admin_token()
    api = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"},
                       timeout=15, trust_env=False)
    approver = httpx.Client(base_url=hub.url, timeout=15, trust_env=False,
                            headers={"Authorization": f"Bearer {approver_token(hub)}"})
    run_id = hub.scalar("SELECT id FROM runs WHERE ticket_id = :t", t=str(first))
    done: list[str] = []
    with api, approver:
        for _ in range(40):  # bounded: one pass per step at most
            run = api.get(f"/api/runs/{run_id}").raise_for_status().json()
            open_steps = [s for s in run["steps"] if s["status"] == "open"]
            if run["status"] != "active" or not open_steps:
                break
            for step in open_steps:  # evidence forms filled; sign-offs by a second person
                finish_step(api, approver, run_id, step,
                            f"e2e evidence for {step['step_id']}")
                done.append(step["step_id"])
        final = api.get(f"/api/runs/{run_id}").raise_for_status().json()
    assert final["status"] == "completed", final
    # Then the ticket gets the launch note, one note per step, then the completion record
    expected = 1 + len(done) + 1
    psa.wait_for_notes([first], expected, timeout=60, detail=hub.detail)
    texts = [n["text"] for n in psa.notes(first)]
    assert len(texts) == expected
    assert "launched" in texts[0]
    for step_note, step in zip(texts[1:-1], done, strict=True):
        assert f"e2e evidence for {step}" in step_note
    record = texts[-1]
    assert "COMPLETED" in record and "Audit chain: entry #" in record
    assert all(f"e2e evidence for {step}" in record for step in done)
    markers = psa.markers(first)
    assert len(markers) == len(set(markers)) == expected
    # and the evidence document is attached and the ticket moved to the completed status
    wait_until(lambda: psa.cw.ticket(first)["status"]["name"] == "Completed", timeout=15,
               what="the ticket status to become Completed", detail=hub.detail)
    docs = psa.cw.documents(first)
    assert len(docs) == 1 and docs[0]["fileName"] == f"msphub-run-{run_id}-evidence.txt"
    assert hub.statuses("outbox_notes") == {"sent": expected + 1}
    assert all(w.alive() for w in workers), hub.logs()
