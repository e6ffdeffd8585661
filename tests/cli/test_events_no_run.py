"""``msphub events``: an alert for a client with no run to tick is visible as such
(``events list --effect no_run_to_tick``, the effect column, ``events show``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from hub.core.events import Event
from hub.runtime.root import build_context
from hub.services.inbox import add_events
from hub.settings import get_settings
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.cli.conftest import Cli, one_line

RULES = """\
rules:
  - id: alert-ticks-intake
    on: alert.resolved
    from: [webhook]
    tick: {playbook: new-starter, step: intake, evidence: "{{ alert.message }}"}
"""
NOW = datetime(2025, 6, 13, 19, 0, tzinfo=UTC)


def alert(cli: Cli, key: str) -> int:
    """Store an alert from acme's site as processed once (failed), ready for a retry."""
    get_settings.cache_clear()
    ctx = build_context(get_settings())
    with transaction(ctx.sessions) as s:
        [event_id] = add_events(s, [Event.model_validate({
            "source": "rmm", "vendor": "webhook", "kind": "alert.resolved",
            "dedupe_key": key, "occurred_at": NOW.isoformat(),
            "client": {"id": "S-1", "name": "Acme HQ", "type": "site"},
            "data": {"alert": {"message": "Backup OK"}}})], via="webhook", now=NOW)
    with transaction(ctx.sessions) as s:
        row = s.get(InboxEvent, event_id)
        assert row is not None
        row.status = "failed"
    ctx.engine.dispose()
    return event_id


def test_no_run_to_tick_is_listed_filtered_and_explained(cli: Cli, tmp_path: Path) -> None:
    """acme has no new-starter run: the alert is done with effect no_run_to_tick; the
    filter lists it and not the alert that did tick a run."""
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "rules.yaml").write_text(RULES)
    assert cli("clients", "add", "acme").exit_code == 0
    assert cli("clients", "link", "acme", "rmm", "site", "S-1").exit_code == 0
    lonely = alert(cli, "alert:1")
    retried = cli("events", "retry", str(lonely))
    assert retried.exit_code == 0, retried.output
    assert f"event {lonely}: done (no_run_to_tick)" in retried.stdout
    launched = cli("runs", "launch", "new-starter", "--client", "acme", "-i", "starter=Jo")
    assert launched.exit_code == 0, launched.output
    ticked = alert(cli, "alert:2")
    assert f"event {ticked}: done (ticked)" in cli("events", "retry", str(ticked)).stdout
    listed = one_line(cli("events", "list", "--effect", "no_run_to_tick").stdout)
    assert re.search(rf"│ {lonely} │.*alert.resolved.*done.*no_run_to_tick", listed)
    assert f"│ {ticked} │" not in listed
    everything = one_line(cli("events", "list").stdout)
    assert re.search(rf"│ {ticked} │.*│ ticked │", everything)
    shown = one_line(cli("events", "show", str(lonely)).stdout)
    assert "no run to tick: client 'acme' has no active run of new-starter" in shown
    none = cli("events", "list", "--effect", "cancelled")
    assert "no events with effect cancelled" in none.stdout
