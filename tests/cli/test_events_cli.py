"""``msphub events``: list the failed ones, see why, fix the cause, retry — exactly once."""

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
  - id: alert-comments-runs
    on: alert.resolved
    from: [webhook]
    comment: {text: "{{ alert.message }}"}
"""


def test_a_failed_event_is_listed_explained_and_retried(cli: Cli, tmp_path: Path) -> None:
    """An event from an unlinked site fails; after `clients link`, `events retry` applies it."""
    # Given a rule on RMM alerts, a run for acme, and an alert from a site nobody linked
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "rules.yaml").write_text(RULES)
    assert cli("clients", "add", "acme").exit_code == 0
    launched = cli("runs", "launch", "new-starter", "--client", "acme", "-i", "starter=Jo")
    assert launched.exit_code == 0, launched.output
    get_settings.cache_clear()
    ctx = build_context(get_settings())
    now = datetime(2025, 6, 13, 19, 0, tzinfo=UTC)
    with transaction(ctx.sessions) as s:
        [event_id] = add_events(s, [Event.model_validate({
            "source": "rmm", "vendor": "webhook", "kind": "alert.resolved",
            "dedupe_key": "alert:1", "occurred_at": now.isoformat(),
            "client": {"id": "S-1", "name": "Acme HQ", "type": "site"},
            "data": {"alert": {"message": "Backup OK"}}})], via="webhook", now=now)
    with transaction(ctx.sessions) as s:  # as if the hub had processed it once already
        s.get(InboxEvent, event_id).status = "failed"
    ctx.engine.dispose()
    first = cli("events", "retry", str(event_id))
    assert first.exit_code == 0, first.output
    assert f"event {event_id}: failed (error)" in first.stdout
    assert "rmm site S-1 (Acme HQ) is not linked" in one_line(first.stdout)
    # When the admin lists failed events and looks at this one
    listed = one_line(cli("events", "list", "--failed").stdout)
    assert re.search(rf"\b{event_id}\b.*rmm.*alert.resolved.*failed", listed)
    assert "not linked to a hub client" in listed
    shown = one_line(cli("events", "show", str(event_id)).stdout)
    assert "site S-1 Acme HQ → hub client (not linked)" in shown
    # Then after linking the site, a retry applies it once
    assert cli("clients", "link", "acme", "rmm", "site", "S-1").exit_code == 0
    retried = cli("events", "retry", str(event_id))
    assert retried.exit_code == 0, retried.output
    assert f"event {event_id}: done (commented)" in retried.stdout
    assert "no events with status failed" in cli("events", "list", "--failed").stdout
    missing = cli("events", "retry", "999")
    assert missing.exit_code == 1 and "event 999 does not exist" in missing.output
