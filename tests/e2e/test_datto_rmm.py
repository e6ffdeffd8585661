"""Datto RMM through the hub over real HTTP: a ConnectWise ticket launches monthly
maintenance for hub client ``acme``; the Datto sandbox resolves a backup alert on a site
linked to ``acme``; its unsigned webhook (URL secret) is re-read from the Datto API and
ticks verify-backups, and the note lands on the ConnectWise ticket. A forged body with
the right URL secret and an invented alert ticks nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from connectors.datto_rmm.sandbox import SandboxServer
from tests.e2e.harness import Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

SOURCE = "datto"
SECRET = "datto-e2e-url-secret-0123456789abcdef"
LAUNCH = """\
rules:
  - id: maintenance-ticket-starts-maintenance
    on: ticket.created
    from: [connectwise]
    if: {ticket.type: Maintenance}
    launch: {playbook: monthly-maintenance}
"""


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    """The Datto RMM sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def _with_datto(hub: Hub, rmm: SandboxServer) -> None:
    """Add a ``datto-rmm`` source to the hub's connectors.yaml (secrets from ${ENV})."""
    path = hub.root / "config" / "connectors.yaml"
    config = json.loads(path.read_text())  # the harness writes JSON (which is YAML)
    raw = rmm.connector_config(requests_per_minute=600)
    raw.update(api_secret="${DATTO_API_SECRET}", webhook_secret="${DATTO_WEBHOOK_SECRET}")
    config["sources"][SOURCE] = {"vendor": "datto-rmm", "poll": {"enabled": False},
                                 "config": raw}
    path.write_text(json.dumps(config, indent=2))
    hub.env.update(DATTO_API_SECRET=rmm.sandbox.api_secret, DATTO_WEBHOOK_SECRET=SECRET)
    (hub.root / "mappings" / "zz-e2e-datto.yaml").write_text(LAUNCH)


def _step(hub: Hub, run_id: int) -> tuple[str, str | None]:
    row = hub.rows("SELECT status, evidence FROM run_steps WHERE run_id = :r AND "
                   "step_id = 'verify-backups'", r=run_id)[0]
    return str(row[0]), row[1]


def test_a_datto_backup_alert_ticks_acme_s_maintenance_and_a_forged_one_does_not(
        psa: Psa, rmm: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """The shipped backup rule, the client directory and enrichment, end to end."""
    # Given a Datto site linked to acme, and the hub's URL registered as a global webhook
    store = rmm.sandbox.store
    site = store.create_site("Acme HQ")
    store.create_device(site["uid"], "ACME-FS01")
    hub = make_hub(links={"acme": [(SOURCE, "site", site["uid"])]})
    _with_datto(hub, rmm)
    hub.serve()
    hub.register_callbacks()
    rmm.sandbox.add_webhook(f"{hub.url}/webhooks/{SOURCE}/{SECRET}")
    # and a ConnectWise maintenance ticket that launched acme's monthly maintenance
    client = psa.new_client()
    ticket = int(psa.cw.create_ticket("Monthly maintenance", company_id=client["company"],
                                      type="Maintenance")["id"])
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    [(run_id, key)] = hub.rows("SELECT runs.id, clients.key FROM runs JOIN clients "
                               "ON clients.id = runs.client_id")
    assert key == "acme"

    # When someone with the URL secret posts a resolution for an alert Datto never had
    forged = json.dumps({"event": "resolved", "alertUid": str(uuid.uuid4()),
                         "siteUid": site["uid"], "siteName": "Acme HQ"}).encode()
    answer = httpx.post(f"{hub.url}/webhooks/{SOURCE}/{SECRET}", content=forged, timeout=10,
                        headers={"Content-Type": "application/json"})
    # Then it is stored, re-read (404 at Datto) and ignored: nothing is ticked
    assert answer.status_code == 202, answer.text
    wait_until(lambda: hub.scalar("SELECT status FROM inbox_events WHERE source = :s",
                                  s=SOURCE) == "ignored",
               timeout=30, what="the forged webhook ignored", detail=hub.detail)
    assert _step(hub, run_id)[0] != "done"
    # and a wrong URL secret is refused outright
    refused = httpx.post(f"{hub.url}/webhooks/{SOURCE}/not-the-secret-0123456789",
                         content=forged, timeout=10)
    assert refused.status_code == 401

    # When Datto raises and then resolves a backup alert on Acme's site
    alert = store.raise_alert(site["uid"], diagnostics="Backup job 'Nightly image' failed")
    store.resolve_alert(alert["alertUid"])
    # Then verify-backups is done with the API's alert as evidence, and ConnectWise has it
    wait_until(lambda: _step(hub, run_id)[0] == "done", timeout=30,
               what="verify-backups ticked", detail=hub.detail)
    evidence = _step(hub, run_id)[1] or ""
    assert f"{SOURCE} alert {alert['alertUid']} resolved" in evidence
    wait_until(lambda: any(alert["alertUid"] in n["text"] for n in psa.notes(ticket)),
               timeout=30, what="the step note on the ConnectWise ticket", detail=hub.detail)
    rows = hub.rows("SELECT kind, status, hub_client FROM inbox_events WHERE source = :s "
                    "AND subject_id = :a ORDER BY id", s=SOURCE, a=alert["alertUid"])
    assert ("alert.resolved", "done", "acme") in [tuple(r) for r in rows]
    # and Datto was asked for the alert: the webhook body alone decided nothing
    assert rmm.sandbox.request_count("GET", f"/api/v2/alert/{alert['alertUid']}") >= 1

    # When Datto repeats the resolved webhook (vendors retry)
    again = httpx.post(f"{hub.url}/webhooks/{SOURCE}/{SECRET}", timeout=10,
                       content=rmm.sandbox.webhook_body("resolved", store.alerts[
                           alert["alertUid"]]), headers={"Content-Type": "application/json"})
    # Then the inbox recognises it: no second event, no second note
    assert again.status_code == 200 and again.json()["duplicates"] == 1, again.text
    assert sum(alert["alertUid"] in n["text"] for n in psa.notes(ticket)) == 1
