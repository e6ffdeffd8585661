"""Verification checks: the closed vocabulary in playbook YAML and the pure evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from hub.core.checklists.checks import (
    AgentsOnline,
    AntivirusHealthy,
    BackupRecent,
    Checks,
    NoCriticalPatches,
    evaluate,
    facts_of,
    parse_duration,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHECKS: TypeAdapter[tuple[object, ...]] = TypeAdapter(Checks)


@dataclass(frozen=True)
class Device:
    id: str
    site: str = "site-1"
    hostname: str | None = None
    online: bool | None = None
    last_seen: datetime | None = None
    patches_pending_critical: int | None = None
    av_active: bool | None = None
    av_up_to_date: bool | None = None
    last_backup_ok_at: datetime | None = None


def test_checks_are_one_mapping_or_a_list_from_a_closed_vocabulary() -> None:
    """`check:` is one mapping or a list; kinds and keys are a closed set."""
    one = CHECKS.validate_python({"kind": "agents_online"})
    many = CHECKS.validate_python([{"kind": "backup_recent", "within": "2 days"},
                                   {"kind": "antivirus_healthy"}])
    assert [c.kind for c in one] == ["agents_online"]
    assert [c.kind for c in many] == ["backup_recent", "antivirus_healthy"]
    assert CHECKS.validate_python(None) == ()
    for bad in ({"kind": "all_good"}, {"kind": "agents_online", "seen": "1h"},
                {"kind": "backup_recent", "within": "yesterday"},
                {"kind": "agents_online", "min_devices": -1}):
        with pytest.raises(ValidationError):
            CHECKS.validate_python(bad)


def test_durations() -> None:
    """Windows are whole minutes, hours or days."""
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("2 days") == timedelta(days=2)
    with pytest.raises(ValueError):
        parse_duration("0h")


def test_agents_online_holds_only_when_every_device_is_online() -> None:
    """One offline device is named as missing; once it is online the check holds, and the
    evidence names every device and what was seen."""
    check = AgentsOnline(kind="agents_online")
    devices = [Device("1", hostname="ACME-FS01", online=True),
               Device("2", hostname="ACME-PC02", online=False,
                      last_seen=NOW - timedelta(days=3))]
    verdict = evaluate([check], devices, NOW)
    assert not verdict.holds
    assert verdict.missing() == [
        "agents_online: ACME-PC02: agent offline (last seen 2026-11-28 12:00 UTC)"]
    fixed = evaluate([check], [devices[0], Device("2", hostname="ACME-PC02", online=True)], NOW)
    assert fixed.holds and fixed.missing() == []
    assert fixed.evidence() == ("RMM check at 2026-12-01 12:00 UTC: agents_online: 2/2 "
                                "devices — ACME-FS01 (online), ACME-PC02 (online)")
    snap = fixed.snapshot()
    assert snap["checked_at"] == NOW.isoformat() and snap["holds"] is True
    assert [d["hostname"] for d in snap["checks"][0]["devices"]] == ["ACME-FS01", "ACME-PC02"]


def test_no_devices_or_unknown_facts_never_hold() -> None:
    """A client with fewer devices than min_devices, or a fact the vendor does not report,
    is missing — silence is not proof."""
    assert evaluate([AgentsOnline(kind="agents_online")], [], NOW).missing() == [
        "agents_online: 0 device(s) listed for the client's RMM sites, at least 1 expected"]
    unknown = evaluate([AgentsOnline(kind="agents_online")], [Device("9")], NOW)
    assert unknown.missing() == ["agents_online: 9: online status unknown (the RMM does "
                                 "not report it)"]
    seen = AgentsOnline(kind="agents_online", seen_within="24h")
    assert evaluate([seen], [Device("9", last_seen=NOW - timedelta(hours=2))], NOW).holds
    assert not evaluate([seen], [Device("9", last_seen=NOW - timedelta(hours=30))], NOW).holds


def test_patches_backup_and_antivirus() -> None:
    """Each kind reads its own fact; all checks of a step must hold."""
    good = Device("1", hostname="A", patches_pending_critical=0, av_active=True,
                  av_up_to_date=True, last_backup_ok_at=NOW - timedelta(hours=3))
    stale = Device("2", hostname="B", patches_pending_critical=2, av_active=True,
                   av_up_to_date=False, last_backup_ok_at=NOW - timedelta(hours=30))
    checks = [NoCriticalPatches(kind="no_critical_patches"),
              BackupRecent(kind="backup_recent", within="24h"),
              AntivirusHealthy(kind="antivirus_healthy")]
    assert evaluate(checks, [good], NOW).holds
    verdict = evaluate(checks, [good, stale], NOW)
    assert not verdict.holds
    assert verdict.missing() == [
        "no_critical_patches: B: 2 critical patch(es) pending",
        "backup_recent: B: last good backup 2026-11-30 06:00 UTC, older than 24h",
        "antivirus_healthy: B: antivirus definitions out of date"]
    assert facts_of(checks) == {"patches", "backup", "antivirus"}
