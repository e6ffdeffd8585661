"""``msphub mappings stats`` and ``mappings test --event``: why a rule did or did not fire,
from the stored events; read-only commands on a fresh database say it has no events."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from hub.config.mappings import load_rules
from hub.core.events import Event
from hub.runtime.root import build_context
from hub.services.inbox import add_events
from hub.services.pipeline import process_event
from hub.settings import get_settings
from hub.store.db import transaction
from tests.cli.conftest import Cli, one_line

RULES = """\
rules:
  - id: backup-comments
    on: alert.resolved
    from: [webhook]
    if: {alert.category: backup}
    comment: {text: "{{ alert.message }}"}
  - id: av-would-comment
    on: alert.resolved
    from: [webhook]
    mode: shadow
    if: {alert.category: antivirus}
    comment: {text: "AV: {{ alert.message }}"}
"""


def store_and_process(categories: list[str]) -> list[int]:
    """Alerts of these categories from acme's site, stored and run through the rules."""
    get_settings.cache_clear()
    ctx = build_context(get_settings())
    rules = load_rules(ctx.settings.mappings_dir, ctx.playbooks())
    now = datetime(2025, 6, 13, 19, 0, tzinfo=UTC)
    ids: list[int] = []
    for i, category in enumerate(categories):
        with transaction(ctx.sessions) as s:
            ids += add_events(s, [Event.model_validate({
                "source": "rmm", "vendor": "webhook", "kind": "alert.resolved",
                "dedupe_key": f"alert:{i}", "occurred_at": now.isoformat(),
                "client": {"id": "S-1", "name": "Acme HQ", "type": "site"},
                "data": {"alert": {"category": category, "message": f"{category} OK"}}})],
                via="webhook", now=now)
    for event_id in ids:
        process_event(ctx, rules, event_id)
    ctx.engine.dispose()
    return ids


def test_read_only_commands_on_a_fresh_database_say_it_has_no_events(cli: Cli) -> None:
    """No empty table, no bare "no events": the database is named as holding nothing."""
    for args in (["events", "list"], ["mappings", "stats"]):
        shown = one_line(cli(*args).stdout)
        assert "the database has no events yet" in shown, args
        assert cli.db_file.name in shown
    missing = cli("mappings", "test", "--event", "1")
    assert missing.exit_code == 2
    assert "the database has no events yet" in one_line(missing.output)


def test_stats_counts_matches_shadow_would_haves_and_near_misses(cli: Cli,
                                                                 tmp_path: Path) -> None:
    """Per rule: matched, failed, would have; the most frequent near-miss reason first."""
    # Given a live rule, a shadow rule and four alerts (one each, two for neither)
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "rules.yaml").write_text(RULES)
    assert cli("clients", "add", "acme").exit_code == 0
    assert cli("clients", "link", "acme", "rmm", "site", "S-1").exit_code == 0
    store_and_process(["backup", "antivirus", "patch", "patch"])
    # When the admin asks for the stats
    result = cli("mappings", "stats", "--since", "7d", "--json")
    assert result.exit_code == 0, result.output
    stats = {r["rule_id"]: r for r in json.loads(result.stdout)["rules"]}
    # Then the live rule matched once and missed three times, patch the most often
    live = stats["backup-comments"]
    assert (live["mode"], live["matched"], live["failed"], live["would_have"]) == (
        "live", 1, 0, 0)
    assert [m["count"] for m in live["near_misses"]] == [2, 1]
    assert "patch" in live["near_misses"][0]["reason"]
    # and the shadow rule would have acted once, and changed nothing
    shadow = stats["av-would-comment"]
    assert (shadow["mode"], shadow["matched"], shadow["would_have"]) == ("shadow", 0, 1)
    # The table says the same
    table = one_line(cli("mappings", "stats").stdout)
    assert "4 events in the last 7d" in table
    assert re.search(r"av-would-comment\W+shadow\W+0\W+0\W+1\W", table)
    # and `events show` of the antivirus alert names what the shadow would have done
    shown = one_line(cli("events", "show", "2").stdout)
    assert "shadow 'av-would-comment': would have commented on all active runs for acme" \
        in shown
    assert "rule versions: av-would-comment@" in shown


def test_mappings_test_dry_runs_a_stored_event_against_the_rules_on_disk(
        cli: Cli, tmp_path: Path) -> None:
    """A stored event (with its linked hub client) against the files as they are now."""
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "rules.yaml").write_text(RULES)
    assert cli("clients", "add", "acme").exit_code == 0
    assert cli("clients", "link", "acme", "rmm", "site", "S-1").exit_code == 0
    [patch] = store_and_process(["patch"])
    # When the rule on disk is widened to patch alerts, and the stored event tried
    (tmp_path / "mappings" / "rules.yaml").write_text(
        RULES.replace("{alert.category: backup}", "{alert.category: {in: [backup, patch]}}"))
    tried = cli("mappings", "test", "--event", str(patch),
                "--mappings-dir", str(tmp_path / "mappings"),
                "--playbooks-dir", str(cli.playbooks_dir))
    # Then it matches now, for the hub client the site is linked to
    assert tried.exit_code == 0, tried.output
    shown = one_line(tried.stdout)
    assert "MATCH backup-comments" in shown and "for client acme" in shown
    assert cli("mappings", "test", "--event", "99").exit_code == 2
