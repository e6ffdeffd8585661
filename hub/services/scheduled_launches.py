"""Recurring launches: each due occurrence of a schedule, once per client.

What launches when is in ``config/schedules.yaml`` (see :mod:`hub.config.schedules`). The job
runs every minute, in any number of scheduler processes: a run's origin is
``scheduler/schedule/<client>@<occurrence key>``, unique per playbook in the database, so two
processes that race for one occurrence launch it once (the loser's insert is refused and rolled
back). What was missed while nothing ran is launched by the schedule's ``catch_up`` policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.config.schedules import ClientTag, ScheduleEntry, load_schedules
from hub.core.recurrence import Occurrence, Recurrence, due_occurrences
from hub.errors import HubError
from hub.services.context import HubContext
from hub.services.runs import Origin
from hub.store.db import transaction
from hub.store.models import Client, Run

log = structlog.get_logger()
ORIGIN_SOURCE, ORIGIN_TYPE = "scheduler", "schedule"
# An occurrence this young is "due now" (catch_up: none launches it; older ones are missed).
# The job runs every minute; the margin covers a busy queue.
ON_TIME = timedelta(minutes=15)


@dataclass(frozen=True)
class Target:
    """One client a schedule launches for, in the time zone its rule follows there."""

    client: str
    tz: ZoneInfo


def launch_due(ctx: HubContext, entries: list[ScheduleEntry]) -> list[int]:
    """Launch every occurrence that is due and not yet launched; returns the new run ids."""
    now = ctx.clock()
    library = ctx.playbooks()
    launched: list[int] = []
    for entry in entries:
        if entry.playbook not in library:
            continue
        playbook = library.get(entry.playbook)
        rule = entry.recurrence(playbook.schedule)
        last = _last_keys(ctx, entry)
        for target in targets(ctx, entry):
            due = due_occurrences(rule, entry.catch_up, now, target.tz, last.get(target.client),
                                  on_time=ON_TIME)
            for occurrence in due:
                run_id = _launch(ctx, entry, target.client, occurrence)
                if run_id is not None:
                    launched.append(run_id)
    if launched:
        log.info("scheduled_runs_launched", count=len(launched))
    return launched


def origin_of(entry: ScheduleEntry, client: str, occurrence: Occurrence) -> Origin:
    """The origin that makes one occurrence for one client launch once:
    ``<client>@<key>``, or ``<name>/<client>@<key>`` for a schedule with its own name (so
    two schedules of one playbook keep apart)."""
    return Origin(ORIGIN_SOURCE, ORIGIN_TYPE, f"{_prefix(entry)}{client}@{occurrence.key}")


def _prefix(entry: ScheduleEntry) -> str:
    return f"{entry.name}/" if entry.name and entry.name != entry.playbook else ""


def _launch(ctx: HubContext, entry: ScheduleEntry, client: str,
            occurrence: Occurrence) -> int | None:
    origin = origin_of(entry, client, occurrence)
    try:
        with transaction(ctx.sessions) as session:
            if ctx.runs.find_by_origin(session, origin, entry.playbook) is not None:
                return None
            run = ctx.runs.launch(session, entry.playbook, client=client, inputs=entry.inputs,
                                  by="scheduler", origin=origin, occurred_at=occurrence.at,
                                  options={"schedule": entry.label,
                                           "occurrence": occurrence.at.isoformat()})
            return run.id
    except IntegrityError:
        # another scheduler process launched this occurrence between our check and insert
        log.info("scheduled_launch_raced", schedule=entry.label, client=client,
                 occurrence=occurrence.key)
        return None
    except (HubError, ValueError) as exc:
        log.error("scheduled_launch_failed", schedule=entry.label, playbook=entry.playbook,
                  client=client, occurrence=occurrence.key, reason=str(exc))
        return None


def _last_keys(ctx: HubContext, entry: ScheduleEntry) -> dict[str, str]:
    """client key → the key of the newest occurrence this schedule launched for it. Keys
    are ISO dates or date-times, so the greatest is the newest."""
    prefix = _prefix(entry)
    mine = (Run.origin_id.startswith(prefix, autoescape=True) if prefix
            else Run.origin_id.not_like("%/%"))
    with ctx.sessions() as session:
        rows = session.execute(
            select(Client.key, func.max(Run.origin_id))
            .join(Client, Client.id == Run.client_id)
            .where(Run.origin_source == ORIGIN_SOURCE, Run.origin_type == ORIGIN_TYPE,
                   Run.playbook_id == entry.playbook, mine)
            .group_by(Client.key)).all()
    out: dict[str, str] = {}
    for key, origin_id in rows:
        head = f"{prefix}{key}@"
        if origin_id and origin_id.startswith(head):
            out[key] = origin_id[len(head):]
    return out


def targets(ctx: HubContext, entry: ScheduleEntry) -> list[Target]:
    """The clients a schedule launches for now, each with the zone its rule follows.

    ``all`` and ``tag:`` read the client directory (provisional clients excluded); a listed
    key that is not in the directory is logged and skipped rather than created.
    """
    with ctx.sessions() as session:
        if isinstance(entry.clients, ClientTag):
            rows = ctx.clients.all(session, tag=entry.clients.tag, include_provisional=False)
        elif entry.clients == "all":
            rows = ctx.clients.all(session, include_provisional=False)
        else:
            rows = []
            for key in entry.clients:
                row = ctx.clients.find(session, key)
                if row is None:
                    log.error("scheduled_client_unknown", schedule=entry.label, client=key)
                else:
                    rows.append(row)
        return [Target(row.key, ZoneInfo(entry.timezone) if entry.timezone
                       else ctx.runs.calendar_for(row).tz) for row in rows]


@dataclass(frozen=True)
class Planned:
    """One launch a preview expects: when, for which clients."""

    at: datetime
    local: dict[str, datetime]  # client → local wall time of the launch
    clients: tuple[str, ...]


def preview(ctx: HubContext, entry: ScheduleEntry, rule: Recurrence, *, after: datetime,
            count: int) -> list[Planned]:
    """The next ``count`` launch instants of a schedule and who gets a run at each."""
    by_instant: dict[datetime, dict[str, datetime]] = {}
    for target in targets(ctx, entry):
        for occ in rule.upcoming(after, target.tz, count):
            by_instant.setdefault(occ.at, {})[target.client] = occ.at.astimezone(target.tz)
    return [Planned(at, local, tuple(sorted(local)))
            for at, local in sorted(by_instant.items())[:count]]


def check(ctx: HubContext) -> list[ScheduleEntry]:
    """Load the schedules for this hub (for start-up and the periodic job)."""
    library = ctx.playbooks()
    return load_schedules(ctx.settings.config_dir / "schedules.yaml",
                          {p.id for p in library}, {p.id: p.schedule for p in library})
