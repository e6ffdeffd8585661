"""Scheduled launches against a real database: catch-up, boundaries, DST, targets, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.config.schedules import ScheduleEntry
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime
from hub.services.scheduled_launches import launch_due, preview, targets
from hub.settings import Settings
from hub.store.db import transaction
from hub.store.models import Run
from tests.pipeline.conftest import Clock
from tests.pipeline.fakes import FakePSA, sources_with


def schedules(rt: Runtime, text: str) -> list[ScheduleEntry]:
    """Write config/schedules.yaml and load it as the job does."""
    (rt.ctx.settings.config_dir / "schedules.yaml").write_text(text)
    entries = rt.current_schedules()
    assert entries, "the schedules file did not load"
    return entries


def add_client(rt: Runtime, key: str, *, tags: tuple[str, ...] = (),
               calendar: str | None = None, provisional: bool = False) -> None:
    with transaction(rt.ctx.sessions) as s:
        if provisional:
            rt.ctx.clients.ensure(s, key, key.title(), provisional=True)
        else:
            rt.ctx.clients.save(s, key, name=key.title(), calendar=calendar, tags=list(tags),
                                by="test")


def launched(rt: Runtime) -> list[tuple[str, str, str]]:
    """(client, origin id, occurrence) of every scheduled run, in launch order."""
    with rt.ctx.sessions() as s:
        runs = s.execute(select(Run).order_by(Run.id)).unique().scalars().all()
        return [(r.client.key, r.origin_id or "", r.options.get("occurrence", ""))
                for r in runs if r.origin_source == "scheduler"]


@pytest.mark.parametrize(("policy", "days"), [
    ("all", ["21", "22", "23"]), ("latest", ["23"]), ("none", ["23"]),
])
def test_a_three_day_outage_is_caught_up_by_policy(runtime: Runtime, clock: Clock, policy: str,
                                                   days: list[str]) -> None:
    """Daily 09:00 runs; the hub is down from the 20th to 09:05 on the 23rd."""
    entries = schedules(runtime, "schedules:\n  - playbook: monthly-maintenance\n"
                        "    every: daily at 09:00\n    timezone: UTC\n    clients: [ACME]\n"
                        f"    catch_up: {policy}\n    inputs: {{has_servers: false}}\n")
    # Given the 20th's run launched on time
    clock.now = datetime(2026, 11, 20, 9, 1, tzinfo=UTC)
    assert len(launch_due(runtime.ctx, entries)) == 1
    # When the hub comes back at 09:05 on the 23rd and the job runs (twice)
    clock.now = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    launch_due(runtime.ctx, entries)
    launch_due(runtime.ctx, entries)
    # Then exactly the policy's occurrences were launched, each once
    assert [o for _, o, _ in launched(runtime)] == [
        "ACME@2026-11-20", *(f"ACME@2026-11-{d}" for d in days)]


def test_walk_across_month_and_quarter_boundaries(runtime: Runtime, clock: Clock) -> None:
    """Every 6 hours from 28 Sep 2026 to 6 Jan 2027: five monthly runs (September's, on
    the first pass, then one per month) and three quarterly ones."""
    entries = schedules(runtime, "schedules:\n  - playbook: monthly-maintenance\n"
                        "    clients: [ACME]\n    inputs: {has_servers: false}\n"
                        "  - playbook: quarterly-security-review\n"
                        "    every: first Monday of each quarter at 08:00\n    clients: [ACME]\n")
    clock.now = datetime(2026, 9, 28, tzinfo=UTC)
    while clock.now < datetime(2027, 1, 6, tzinfo=UTC):
        launch_due(runtime.ctx, entries)
        clock.advance(hours=6)
    origins = [o for _, o, _ in launched(runtime)]
    monthly = sorted(o for o in origins if o in {f"ACME@{d}" for d in (
        "2026-09-01", "2026-10-01", "2026-11-01", "2026-12-01", "2027-01-01")})
    assert len(monthly) == 5 and len(set(origins)) == len(origins)
    with runtime.ctx.sessions() as s:
        quarterly = sorted(s.execute(select(Run.origin_id).where(
            Run.playbook_id == "quarterly-security-review")).scalars())
    assert quarterly == ["ACME@2026-07-06", "ACME@2026-10-05", "ACME@2027-01-04"]
    assert len(origins) == 8


@pytest.mark.parametrize(("zone", "rule", "first_day", "expected"), [
    ("Europe/London", "daily at 01:30", datetime(2026, 3, 28, tzinfo=UTC),
     ["2026-03-28T01:30", "2026-03-29T01:30", "2026-03-30T00:30"]),
    ("Europe/London", "daily at 01:30", datetime(2026, 10, 24, tzinfo=UTC),
     ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-26T01:30"]),
    ("America/New_York", "30 2 * * *", datetime(2026, 3, 7, 5, tzinfo=UTC),
     ["2026-03-07T07:30", "2026-03-08T07:30", "2026-03-09T06:30"]),
    ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 4, tzinfo=UTC),
     ["2026-10-31T05:30", "2026-11-01T05:30", "2026-11-02T06:30"]),
], ids=["london-spring", "london-autumn", "new-york-spring", "new-york-autumn"])
def test_dst_walk_launches_one_run_a_day(runtime: Runtime, clock: Clock, zone: str, rule: str,
                                         first_day: datetime, expected: list[str]) -> None:
    """The job runs every hour (at :40) for three days around a DST change; the
    occurrence in the missing or repeated hour launches exactly once."""
    key = "cron" if rule[0].isdigit() else "every"
    entries = schedules(runtime, "schedules:\n  - playbook: monthly-maintenance\n"
                        f"    {key}: '{rule}'\n    timezone: {zone}\n    clients: [ACME]\n"
                        "    catch_up: none\n    inputs: {has_servers: false}\n")
    clock.now = first_day.replace(minute=40)
    for _ in range(72):
        launch_due(runtime.ctx, entries)
        clock.advance(hours=1)
    got = [occ[:16] for _, _, occ in launched(runtime)]
    assert got == expected


def test_targets_all_tag_list_and_the_clients_own_time_zone(runtime: Runtime,
                                                            clock: Clock) -> None:
    """'all' skips provisional clients, 'tag:' picks tagged ones, and 09:00 is 09:00 in
    each client's calendar (directory first, then team.yaml, then default)."""
    add_client(runtime, "globex", tags=("managed-services",), calendar="us-east")
    add_client(runtime, "initech", tags=("break-fix",))
    add_client(runtime, "cw-prod-company-77", provisional=True)
    entries = schedules(runtime, "schedules:\n"
                        "  - {name: everyone, playbook: monthly-maintenance, clients: all,"
                        " inputs: {has_servers: false}}\n"
                        "  - {name: managed, playbook: monthly-maintenance,"
                        " every: 'daily at 09:00', clients: {tag: managed-services},"
                        " inputs: {has_servers: false}}\n")
    everyone, managed = entries
    zones = {t.client: str(t.tz) for t in targets(runtime.ctx, everyone)}
    # ACME's calendar comes from team.yaml (us-east); initech has none: default (London)
    assert zones == {"ACME": "America/New_York", "globex": "America/New_York",
                     "initech": "Europe/London"}
    assert [t.client for t in targets(runtime.ctx, managed)] == ["ACME", "globex"]
    # When previewing the next two 09:00 launches of the tagged schedule
    plan = preview(runtime.ctx, managed, managed.recurrence(None),
                   after=datetime(2026, 11, 20, 10, tzinfo=UTC), count=2)
    # Then both clients launch at 14:00 UTC, 09:00 in New York
    assert [(p.at, p.clients) for p in plan] == [
        (datetime(2026, 11, 20, 14, tzinfo=UTC), ("ACME", "globex")),
        (datetime(2026, 11, 21, 14, tzinfo=UTC), ("ACME", "globex"))]
    assert {f"{t:%H:%M %Z}" for t in plan[0].local.values()} == {"09:00 EST"}
    # And the job launches the named schedules separately, once each
    clock.now = datetime(2026, 11, 20, 14, 5, tzinfo=UTC)
    launch_due(runtime.ctx, entries)
    launch_due(runtime.ctx, entries)
    assert sorted(o for _, o, _ in launched(runtime)) == [
        "everyone/ACME@2026-11-01", "everyone/globex@2026-11-01",
        "everyone/initech@2026-11-01", "managed/ACME@2026-11-20", "managed/globex@2026-11-20"]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_schedulers_on_one_postgresql_launch_each_occurrence_once(
        runtime: Runtime, hub_settings: Settings, clock: Clock, psa: FakePSA) -> None:
    """Two scheduler processes (two runtimes with their own connection pools) run the job
    at the same moments for 12 clients over 5 days; each occurrence launches once."""
    for i in range(12):
        add_client(runtime, f"client-{i:02d}", tags=("managed-services",))
    entries = schedules(runtime, "schedules:\n  - playbook: monthly-maintenance\n"
                        "    every: every day at 09:00\n    timezone: UTC\n"
                        "    clients: {tag: managed-services}\n    catch_up: all\n"
                        "    inputs: {has_servers: false}\n")
    other = build_runtime(hub_settings, clock=clock, sources=sources_with(psa))
    try:
        won: list[list[int]] = [[], []]
        start = datetime(2026, 11, 20, 9, 2, tzinfo=UTC)
        for day in range(5):
            clock.now = start + timedelta(days=day)
            gate = threading.Barrier(2, timeout=60)

            def tick(rt: Runtime, into: list[int], gate: threading.Barrier = gate) -> None:
                gate.wait()
                into.extend(launch_due(rt.ctx, entries))

            threads = [threading.Thread(target=tick, args=(rt, won[n]))
                       for n, rt in enumerate((runtime, other))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
                assert not t.is_alive()
    finally:
        other.stop()
    origins = [o for _, o, _ in launched(runtime)]
    # ACME is tagged managed-services too: 13 clients x 5 days, no duplicates
    assert len(origins) == len(set(origins)) == 13 * 5
    assert len(won[0]) + len(won[1]) == 13 * 5
