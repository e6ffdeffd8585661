"""N-central through the hub over real HTTP: a ConnectWise ticket launches monthly
maintenance for hub client ``acme``; the hub polls the N-central sandbox every 2 s; a
backup monitor on a device of a site of the customer linked to ``acme`` fails (an active
issue appears: ``alert.raised``) and then recovers (the issue is gone: ``alert.resolved``),
which ticks verify-backups with the alert as evidence, and the note lands on the ticket;
a device added in N-central reaches the inbox as device.added for ``acme``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from connectors.ncentral.sandbox import SandboxServer
from tests.e2e.harness import Hub, Psa, wait_until

pytestmark = [pytest.mark.slow]

SOURCE = "ncentral"
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
    """The N-central sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def _with_ncentral(hub: Hub, rmm: SandboxServer) -> None:
    """Add an ``ncentral`` source polled every 2 s (the JWT from ${NCENTRAL_JWT})."""
    path = hub.root / "config" / "connectors.yaml"
    config = json.loads(path.read_text())  # the harness writes JSON (which is YAML)
    raw = rmm.connector_config(user_api_token="${NCENTRAL_JWT}")
    config["sources"][SOURCE] = {"vendor": "ncentral",
                                 "poll": {"enabled": True, "interval": "2s"}, "config": raw}
    path.write_text(json.dumps(config, indent=2))
    hub.env.update(NCENTRAL_JWT=rmm.sandbox.user_api_token)
    (hub.root / "mappings" / "zz-e2e-ncentral.yaml").write_text(LAUNCH)


def _step(hub: Hub, run_id: int) -> tuple[str, str | None]:
    row = hub.rows("SELECT status, evidence FROM run_steps WHERE run_id = :r AND "
                   "step_id = 'verify-backups'", r=run_id)[0]
    return str(row[0]), row[1]


def _kinds(hub: Hub, subject: str) -> list[tuple[str, str, str | None]]:
    rows = hub.rows("SELECT kind, status, hub_client FROM inbox_events WHERE source = :s "
                    "AND subject_id = :a ORDER BY id", s=SOURCE, a=subject)
    return [(str(r[0]), str(r[1]), r[2]) for r in rows]


def test_an_n_central_backup_issue_clearing_ticks_acme_s_maintenance(
        psa: Psa, rmm: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """Poll, diff, the client directory and the shipped backup rule, end to end."""
    # Given an N-central customer (with a site and a server there) linked to acme
    store = rmm.sandbox.store
    customer = store.create_customer("Acme Corp")
    site = store.create_site(customer["customerId"], "Acme HQ")
    server = store.create_device(site["siteId"], "ACME-FS01")
    hub = make_hub(links={"acme": [(SOURCE, "customer", str(customer["customerId"]))]})
    _with_ncentral(hub, rmm)
    hub.serve()
    hub.register_callbacks()
    # and a ConnectWise maintenance ticket that launched acme's monthly maintenance
    client = psa.new_client()
    ticket = int(psa.cw.create_ticket("Monthly maintenance", company_id=client["company"],
                                      type="Maintenance")["id"])
    psa.wait_for_notes([ticket], 1, timeout=30, detail=hub.detail)
    [(run_id, key)] = hub.rows("SELECT runs.id, clients.key FROM runs JOIN clients "
                               "ON clients.id = runs.client_id")
    assert key == "acme"
    # and the hub has polled N-central at least once (its baseline)
    wait_until(lambda: hub.scalar("SELECT count(*) FROM source_cursors WHERE source = :s "
                                  "AND stream = 'active_issues'", s=SOURCE) == 1,
               timeout=30, what="the first N-central poll", detail=hub.detail)

    # When the backup monitor on ACME-FS01 fails
    issue = store.raise_issue(server["deviceId"], "Backup Manager")
    # Then a poll sees the new active issue: alert.raised for acme (no rule ticks on it)
    def raised() -> str | None:
        rows = hub.rows("SELECT subject_id FROM inbox_events WHERE source = :s AND "
                        "kind = 'alert.raised'", s=SOURCE)
        return str(rows[0][0]) if rows else None

    subject = wait_until(raised, timeout=30, what="alert.raised stored", detail=hub.detail)
    assert subject.startswith(f"{issue['taskId']}@")
    assert _step(hub, run_id)[0] != "done"

    # When the monitor recovers (the issue leaves the active list)
    store.clear_issue(issue["taskId"])
    # Then verify-backups is done with the alert as evidence, and ConnectWise has the note
    wait_until(lambda: _step(hub, run_id)[0] == "done", timeout=30,
               what="verify-backups ticked", detail=hub.detail)
    evidence = _step(hub, run_id)[1] or ""
    assert f"{SOURCE} alert {subject} resolved" in evidence
    assert "Backup Manager cleared on ACME-FS01" in evidence
    wait_until(lambda: any(subject in n["text"] for n in psa.notes(ticket)), timeout=30,
               what="the step note on the ConnectWise ticket", detail=hub.detail)
    assert _kinds(hub, subject) == [("alert.raised", "ignored", "acme"),
                                    ("alert.resolved", "done", "acme")]

    # When an agent is installed on a new laptop of the customer
    laptop = store.create_device(customer["customerId"], "ACME-LT12")
    # Then the devices stream reports it for acme
    wait_until(lambda: hub.rows("SELECT status, hub_client FROM inbox_events WHERE "
                                "source = :s AND dedupe_key = :k", s=SOURCE,
                                k=f"device:{laptop['deviceId']}:added"),
               timeout=30, what="device.added stored", detail=hub.detail)

    # When the hub keeps polling a quiet N-central
    polls = rmm.sandbox.request_count(
        "GET", f"/api/org-units/{customer['customerId']}/active-issues")
    wait_until(lambda: rmm.sandbox.request_count(
        "GET", f"/api/org-units/{customer['customerId']}/active-issues") >= polls + 2,
        timeout=30, what="two more polls", detail=hub.detail)
    # Then nothing is raised or resolved twice, and one note was posted for the step
    assert _kinds(hub, subject) == [("alert.raised", "ignored", "acme"),
                                    ("alert.resolved", "done", "acme")]
    assert sum(subject in n["text"] for n in psa.notes(ticket)) == 1
