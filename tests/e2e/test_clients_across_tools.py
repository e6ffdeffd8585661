"""One client across tools, over real HTTP: a ConnectWise ticket launches a run for hub
client ``acme``; an alert from an RMM site linked to ``acme`` ticks its step; the note
lands on the ConnectWise ticket."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from connectors.webhook.connector import signature
from tests.e2e.harness import Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

SECRET = "datto-stand-in-secret-0123456789"
SITE = "5f6e7d8c-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
RULES = """\
rules:
  - id: maintenance-ticket-starts-maintenance
    on: ticket.created
    from: [connectwise]
    if: {ticket.type: Maintenance}
    launch: {playbook: monthly-maintenance}
  - id: site-backup-verifies-backups
    on: alert.resolved
    from: [datto]
    if: {alert.category: backup}
    tick:
      playbook: [monthly-maintenance]
      step: verify-backups
      evidence: "{{ source }} site {{ client.id }} alert {{ alert.id }}: {{ alert.message }}"
"""


def test_an_rmm_site_alert_ticks_the_run_a_connectwise_ticket_launched(
        psa: Psa, make_hub: Callable[..., Hub]) -> None:
    """The Datto-shaped site and the ConnectWise company are both `acme`."""
    # Given a hub with the ConnectWise sandbox and an RMM stand-in, both linked to acme
    hub = make_hub(webhook_sources={"datto": SECRET},
                   links={"acme": [("datto", "site", SITE)]})
    (hub.root / "mappings" / "zz-e2e-clients.yaml").write_text(RULES)
    hub.serve()
    hub.register_callbacks()
    client = psa.new_client()
    # When ConnectWise raises a maintenance ticket for Acme
    ticket = int(psa.cw.create_ticket("Monthly maintenance", company_id=client["company"],
                                      type="Maintenance")["id"])
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    [(run_id, key)] = hub.rows("SELECT runs.id, clients.key FROM runs JOIN clients "
                               "ON clients.id = runs.client_id")
    assert key == "acme"
    # and the RMM reports a successful backup on Acme's site
    body = json.dumps({
        "kind": "alert.resolved", "dedupe_key": "alert:9001:resolved",
        "occurred_at": "2026-12-01T10:00:00Z",
        "client": {"id": SITE, "name": "Acme HQ", "type": "site"},
        "subject": {"type": "alert", "id": "9001"},
        "data": {"alert": {"id": "9001", "category": "backup", "message": "Backup OK"}},
    }).encode()
    stamp = str(int(time.time()))
    answer = httpx.post(f"{hub.url}/webhooks/datto", content=body, timeout=10, headers={
        "X-Msphub-Timestamp": stamp, "X-Msphub-Signature": signature(SECRET, stamp, body),
        "Content-Type": "application/json"})
    assert answer.status_code == 202, answer.text
    # Then the run's step is done with the alert as evidence, and ConnectWise has the note
    wait_until(lambda: hub.scalar("SELECT status FROM run_steps WHERE run_id = :r AND "
                                  "step_id = 'verify-backups'", r=run_id) == "done",
               timeout=30, what="verify-backups ticked", detail=hub.detail)
    evidence = f"datto site {SITE} alert 9001: Backup OK"
    assert hub.scalar("SELECT evidence FROM run_steps WHERE run_id = :r AND "
                      "step_id = 'verify-backups'", r=run_id) == evidence
    wait_until(lambda: any(evidence in n["text"] for n in psa.notes(ticket)), timeout=30,
               what="the step note on the ConnectWise ticket", detail=hub.detail)
    assert hub.rows("SELECT hub_client, status FROM inbox_events WHERE source = 'datto'") == [
        ("acme", "done")]
