"""NinjaOne through the hub over real HTTP: a ConnectWise ticket launches monthly
maintenance for hub client ``acme``; the NinjaOne sandbox finishes a backup job on a
device of the organization linked to ``acme``; the webhook (registered through NinjaOne's
API with our secret header) is re-read from the NinjaOne API and ticks verify-backups, and
the note lands on the ConnectWise ticket. A forged body with the right header and an
invented activity ticks nothing; a failed job's webhook does not tick either."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from connectors.base import build_connector
from connectors.ninjaone.sandbox import SandboxServer
from tests.e2e.harness import Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

SOURCE = "ninja"
SECRET = "ninja-e2e-header-secret-0123456789abcdef"
HEADER = "X-Msphub-Webhook-Secret"
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
    """The NinjaOne sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def _with_ninja(hub: Hub, rmm: SandboxServer, *,
                poll: dict[str, object] | None = None) -> dict[str, object]:
    """Add a ``ninjaone`` source to the hub's connectors.yaml (secrets from ${ENV});
    returns the same config with the real secrets (to register the webhook)."""
    path = hub.root / "config" / "connectors.yaml"
    config = json.loads(path.read_text())  # the harness writes JSON (which is YAML)
    real = rmm.connector_config(requests_per_minute=600, webhook_secret=SECRET)
    raw = {**real, "client_secret": "${NINJA_CLIENT_SECRET}",
           "webhook_secret": "${NINJA_WEBHOOK_SECRET}"}
    config["sources"][SOURCE] = {"vendor": "ninjaone", "poll": poll or {"enabled": False},
                                 "config": raw}
    path.write_text(json.dumps(config, indent=2))
    hub.env.update(NINJA_CLIENT_SECRET=rmm.sandbox.client_secret, NINJA_WEBHOOK_SECRET=SECRET)
    (hub.root / "mappings" / "zz-e2e-ninja.yaml").write_text(LAUNCH)
    return real


def _step(hub: Hub, run_id: int) -> tuple[str, str | None]:
    row = hub.rows("SELECT status, evidence FROM run_steps WHERE run_id = :r AND "
                   "step_id = 'verify-backups'", r=run_id)[0]
    return str(row[0]), row[1]


def _status(hub: Hub, key: str) -> str | None:
    return hub.scalar("SELECT status FROM inbox_events WHERE source = :s AND dedupe_key = :k",
                      s=SOURCE, k=key)


def test_a_ninjaone_backup_job_ticks_acme_s_maintenance_and_a_forged_one_does_not(
        psa: Psa, rmm: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """The shipped backup rule, the client directory and enrichment, end to end."""
    # Given a NinjaOne organization linked to acme, with one device
    store = rmm.sandbox.store
    org = store.create_organization("Acme Ltd")
    device = store.create_device(org["id"], "ACME-FS01")
    hub = make_hub(links={"acme": [(SOURCE, "organization", str(org["id"]))]})
    real = _with_ninja(hub, rmm)
    hub.serve()
    hub.register_callbacks()
    # and the hub's URL registered as the API client's webhook, through NinjaOne's API
    ninja = build_connector("ninjaone", SOURCE, real)
    try:
        ninja.register_webhooks(f"{hub.url}/webhooks/{SOURCE}")  # type: ignore[attr-defined]
    finally:
        ninja.close()
    assert rmm.sandbox.webhook is not None
    # and a ConnectWise maintenance ticket that launched acme's monthly maintenance
    client = psa.new_client()
    ticket = int(psa.cw.create_ticket("Monthly maintenance", company_id=client["company"],
                                      type="Maintenance")["id"])
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    [(run_id, key)] = hub.rows("SELECT runs.id, clients.key FROM runs JOIN clients "
                               "ON clients.id = runs.client_id")
    assert key == "acme"

    # When someone with the secret header posts a completed backup NinjaOne never had
    # (an id below the account's newest: NinjaOne would have listed it)
    invented = (store.last_activity_id() or 0) - 1
    forged = json.dumps({
        "id": invented, "activityTime": 1764590000.0, "deviceId": device["id"],
        "seriesUid": "6f1c2a9e-0000-4000-8000-000000000001", "activityType": "NINJA_BACKUP",
        "statusCode": "NINJA_BACKUP_BACKUPJOB_COMPLETED", "message": "Backup completed",
        "device": {"id": device["id"], "organizationId": org["id"]}}).encode()
    answer = httpx.post(f"{hub.url}/webhooks/{SOURCE}", content=forged, timeout=10,
                        headers={"Content-Type": "application/json", HEADER: SECRET})
    # Then it is stored, re-read (unknown at NinjaOne) and ignored: nothing is ticked
    assert answer.status_code == 202, answer.text
    wait_until(lambda: _status(hub, f"activity:{invented}") == "ignored", timeout=30,
               what="the forged webhook ignored", detail=hub.detail)
    assert _step(hub, run_id)[0] != "done"
    # and a wrong or missing header is refused outright
    for headers in ({HEADER: "not-the-secret-0123456789"}, {}):
        refused = httpx.post(f"{hub.url}/webhooks/{SOURCE}", content=forged, timeout=10,
                             headers={"Content-Type": "application/json", **headers})
        assert refused.status_code == 401

    # When a backup job on Acme's server fails (its webhook is a raised backup alert)
    failed = store.backup_job(device["id"], ok=False)
    wait_until(lambda: _status(hub, f"activity:{failed['id']}") in ("done", "ignored"),
               timeout=30, what="the failed job processed", detail=hub.detail)
    assert _step(hub, run_id)[0] != "done"
    # and then the next one completes
    job = store.backup_job(device["id"])
    # Then verify-backups is done with NinjaOne's activity as evidence, and ConnectWise has it
    wait_until(lambda: _step(hub, run_id)[0] == "done", timeout=30,
               what="verify-backups ticked", detail=hub.detail)
    evidence = _step(hub, run_id)[1] or ""
    assert f"{SOURCE} alert {job['seriesUid']} resolved" in evidence
    assert "completed successfully" in evidence
    wait_until(lambda: any(job["seriesUid"] in n["text"] for n in psa.notes(ticket)),
               timeout=30, what="the step note on the ConnectWise ticket", detail=hub.detail)
    rows = hub.rows("SELECT kind, status, hub_client FROM inbox_events WHERE source = :s "
                    "AND dedupe_key = :k", s=SOURCE, k=f"activity:{job['id']}")
    assert [tuple(r) for r in rows] == [("alert.resolved", "done", "acme")]
    # and NinjaOne's API was asked: the webhook body alone decided nothing
    assert rmm.sandbox.request_count("GET", "/v2/activities") >= 3
    assert rmm.sandbox.request_count("GET", f"/v2/device/{device['id']}") >= 1

    # When NinjaOne repeats the webhook (vendors retry)
    again = httpx.post(f"{hub.url}/webhooks/{SOURCE}", content=rmm.sandbox.webhook_body(job),
                       timeout=10, headers={"Content-Type": "application/json", HEADER: SECRET})
    # Then the inbox recognises it: no second event, no second note
    assert again.status_code == 200 and again.json()["duplicates"] == 1, again.text
    assert sum(job["seriesUid"] in n["text"] for n in psa.notes(ticket)) == 1


def test_a_lost_webhook_is_caught_by_the_activity_poll(
        psa: Psa, rmm: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """The poll is the safety net: NinjaOne drops the webhook of a completed backup job;
    the activity stream (every 2 s) finds it and the step is ticked once."""
    # Given acme's organization, a hub polling the activity stream, the webhook registered
    store = rmm.sandbox.store
    org = store.create_organization("Acme Ltd")
    device = store.create_device(org["id"], "ACME-FS01")
    hub = make_hub(links={"acme": [(SOURCE, "organization", str(org["id"]))]})
    real = _with_ninja(hub, rmm, poll={"enabled": True, "interval": "2s"})
    hub.serve()
    hub.register_callbacks()
    ninja = build_connector("ninjaone", SOURCE, real)
    try:
        ninja.register_webhooks(f"{hub.url}/webhooks/{SOURCE}")  # type: ignore[attr-defined]
    finally:
        ninja.close()
    client = psa.new_client()
    ticket = int(psa.cw.create_ticket("Monthly maintenance", company_id=client["company"],
                                      type="Maintenance")["id"])
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    [run_id] = [r[0] for r in hub.rows("SELECT id FROM runs")]

    # When NinjaOne loses the webhook of a completed backup job
    rmm.sandbox.faults.drop_webhooks(next=1)
    job = store.backup_job(device["id"])

    # Then the poll picks the activity up and verify-backups is ticked with it
    wait_until(lambda: _step(hub, run_id)[0] == "done", timeout=60,
               what="verify-backups ticked by the poll", detail=hub.detail)
    assert job["seriesUid"] in (_step(hub, run_id)[1] or "")
    assert hub.rows("SELECT via, status, hub_client FROM inbox_events WHERE source = :s "
                    "AND dedupe_key = :k", s=SOURCE, k=f"activity:{job['id']}") == [
        ("poll", "done", "acme")]
    assert rmm.sandbox.faults.dropped == 1
    wait_until(lambda: any(job["seriesUid"] in n["text"] for n in psa.notes(ticket)),
               timeout=30, what="the step note on the ConnectWise ticket", detail=hub.detail)
