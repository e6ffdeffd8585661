"""Recurring launches: schedule rules, config/schedules.yaml, and the periodic job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from hub.core.recurrence import Recurrence
from hub.errors import ConfigError
from hub.runtime.process import Runtime
from hub.services.scheduled_launches import load_schedules
from hub.store.models import Run
from tests.pipeline.conftest import Clock

LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")


@pytest.mark.parametrize(("rule", "now", "tz", "expected"), [
    # monthly: before 09:00 on the 1st → the previous month's occurrence
    ("monthly on day 1 at 09:00", datetime(2026, 12, 1, 8, 59, tzinfo=UTC), LONDON,
     datetime(2026, 11, 1, 9, 0, tzinfo=UTC)),
    ("monthly on day 1 at 09:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC), LONDON,
     datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
    # summer time: 09:00 London is 08:00 UTC
    ("monthly on day 15 at 09:00", datetime(2026, 7, 20, tzinfo=UTC), LONDON,
     datetime(2026, 7, 15, 8, 0, tzinfo=UTC)),
    ("quarterly on day 1 at 09:00", datetime(2026, 11, 22, tzinfo=UTC), NEW_YORK,
     datetime(2026, 10, 1, 13, 0, tzinfo=UTC)),
    ("quarterly on day 1 at 09:00", datetime(2026, 2, 10, tzinfo=UTC), NEW_YORK,
     datetime(2026, 1, 1, 14, 0, tzinfo=UTC)),
    ("weekly on mon at 08:00", datetime(2026, 11, 23, 12, 0, tzinfo=UTC), NEW_YORK,
     datetime(2026, 11, 16, 13, 0, tzinfo=UTC)),
    ("daily at 07:30", datetime(2026, 11, 22, 7, 0, tzinfo=UTC), LONDON,
     datetime(2026, 11, 21, 7, 30, tzinfo=UTC)),
])
def test_last_occurrence_in_the_clients_time_zone(rule: str, now: datetime, tz: ZoneInfo,
                                                  expected: datetime) -> None:
    """The latest occurrence at or before now, computed in local time, returned in UTC."""
    assert Recurrence.parse(rule).last_occurrence(now, tz) == expected


@pytest.mark.parametrize("text", ["monthly on day 31 at 09:00", "every month",
                                  "weekly on funday at 09:00", "daily at 25:00"])
def test_bad_rules_are_refused_with_the_accepted_forms(text: str) -> None:
    """A schedule in none of the accepted forms names the text and what is accepted."""
    with pytest.raises(ValueError, match="schedule"):
        Recurrence.parse(text)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("schedules:\n  - playbook: nope\n    clients: [A]\n", 2, "unknown playbook 'nope'"),
    ("schedules:\n  - playbook: user-offboarding\n    clients: [A]\n", 2, "has no schedule"),
    ("schedules:\n  - playbook: monthly-maintenance\n    every: sometimes\n    clients: [A]\n",
     3, "invalid schedule"),
    ("schedules:\n  - playbook: monthly-maintenance\n    cron: '0 9 1 *'\n    clients: [A]\n",
     3, "five fields"),
    ("schedules:\n  - playbook: monthly-maintenance\n    rrule: FREQ=WEEKLY;BYHOUR=9\n"
     "    clients: [A]\n", 3, "say the weekday"),
    ("schedules:\n  - playbook: monthly-maintenance\n    every: daily at 09:00\n"
     "    cron: '0 9 * * *'\n    clients: [A]\n", 2, "not every and cron"),
    ("schedules:\n  - playbook: monthly-maintenance\n    timezone: Mars/Olympus\n"
     "    clients: [A]\n", 3, "unknown IANA time zone"),
    ("schedules:\n  - playbook: monthly-maintenance\n    catch_up: some\n    clients: [A]\n",
     3, "catch_up"),
    ("schedules:\n  - playbook: monthly-maintenance\n    clients: [A]\n"
     "  - playbook: monthly-maintenance\n    clients: [B]\n", 4, "give each a 'name:'"),
    ("schedules:\n  - playbook: monthly-maintenance\n", 2, "clients"),
])
def test_schedule_file_errors_name_file_and_line(tmp_path: Path, text: str, line: int,
                                                 message: str) -> None:
    """config/schedules.yaml mistakes are ConfigErrors with file and line."""
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_schedules(path, {"monthly-maintenance", "user-offboarding"},
                       {"monthly-maintenance": "monthly on day 1 at 09:00",
                        "user-offboarding": None})
    assert (info.value.file, info.value.line) == (str(path), line)
    assert message in str(info.value)


def test_each_occurrence_launches_once_per_client(runtime: Runtime, clock: Clock) -> None:
    """The job launches this month's maintenance for each listed client, once; next
    month it launches again. A listed key the directory does not know is skipped."""
    from hub.runtime.periodic import run as run_job
    from hub.store.db import transaction

    with transaction(runtime.ctx.sessions) as s:
        runtime.ctx.clients.ensure(s, "19300", "Globex")
    (runtime.ctx.settings.config_dir / "schedules.yaml").write_text(
        "schedules:\n  - playbook: monthly-maintenance\n    clients: [ACME, '19300', nobody]\n"
        "    inputs: {has_servers: false}\n")
    # Given the 20th of the month: the 1st's occurrence is due and not launched yet
    run_job(runtime, "schedules")
    run_job(runtime, "schedules")  # a second pass (or a second scheduler tick) adds nothing
    with runtime.ctx.sessions() as s:
        runs = s.execute(select(Run).order_by(Run.id)).unique().scalars().all()
        assert [(r.client.key, r.playbook_id, r.launched_by) for r in runs] == [
            ("ACME", "monthly-maintenance", "scheduler"),
            ("19300", "monthly-maintenance", "scheduler")]
        assert runs[0].inputs["has_servers"] is False
        assert runs[0].origin_id == "ACME@2026-11-01"
    # When the clock reaches the next month's occurrence
    clock.now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    run_job(runtime, "schedules")
    with runtime.ctx.sessions() as s:
        origins = sorted(s.execute(select(Run.origin_id)).scalars())
    assert origins == ["19300@2026-11-01", "19300@2026-12-01", "ACME@2026-11-01",
                       "ACME@2026-12-01"]


def test_a_broken_schedule_edit_keeps_the_last_good_list(runtime: Runtime) -> None:
    """A broken config/schedules.yaml is logged; the schedules loaded before stay."""
    from structlog.testing import capture_logs

    path = runtime.ctx.settings.config_dir / "schedules.yaml"
    path.write_text("schedules:\n  - playbook: monthly-maintenance\n    clients: [ACME]\n")
    good = runtime.current_schedules()
    path.write_text("schedules:\n  - playbook: nope\n    clients: [ACME]\n")
    with capture_logs() as logs:
        kept = runtime.current_schedules()
    assert kept == good and len(kept) == 1
    assert any(e["event"] == "schedules_invalid" and e["line"] == 2 for e in logs)


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    """The commented example in config/schedules.yaml loads once uncommented."""
    from hub.config.playbooks import load_library

    repo = Path(__file__).resolve().parents[2]
    text = (repo / "config" / "schedules.yaml").read_text()
    lines = text.splitlines()
    start = lines.index("# schedules:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    example = "\n".join(block)
    path = tmp_path / "schedules.yaml"
    path.write_text(example + "\n")
    library = load_library(repo / "playbooks")
    entries = load_schedules(path, {p.id for p in library},
                             {p.id: p.schedule for p in library})
    assert [(e.label, e.playbook, e.describe_clients(), e.catch_up.value) for e in entries] == [
        ("monthly-maintenance", "monthly-maintenance", "tag: managed-services", "latest"),
        ("monthly-maintenance-small-offices", "monthly-maintenance", "globex", "all"),
        ("quarterly-security-review", "quarterly-security-review", "all", "latest"),
        ("backup-restore-test", "quarterly-security-review", "acme", "none")]
    assert [e.recurrence("monthly on day 1 at 09:00").kind for e in entries] == [
        "rrule", "rrule", "rrule", "cron"]
    assert load_schedules(repo / "config" / "schedules.yaml", set(), {}) == []
