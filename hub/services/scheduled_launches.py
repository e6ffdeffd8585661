"""Recurring launches: each due occurrence of a schedule, once per client.

What launches when is in ``config/schedules.yaml`` (see :mod:`hub.config.schedules`).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select

from hub.config.schedules import ScheduleEntry, load_schedules
from hub.core.recurrence import ScheduleRule
from hub.errors import HubError
from hub.services.context import HubContext
from hub.services.runs import Origin
from hub.store.db import transaction
from hub.store.models import Client

log = structlog.get_logger()


def launch_due(ctx: HubContext, entries: list[ScheduleEntry]) -> list[int]:
    """Launch every occurrence that is due and not yet launched; returns the new run ids."""
    now = ctx.clock()
    library = ctx.playbooks()
    launched: list[int] = []
    for entry in entries:
        if entry.playbook not in library:
            continue
        playbook = library.get(entry.playbook)
        rule = ScheduleRule.parse(entry.every or playbook.schedule or "")
        for client in _clients(ctx, entry):
            calendar = ctx.calendars.get(ctx.team.calendar_for(client)) or ctx.calendars.get(
                "default")
            tz = ZoneInfo(calendar.timezone if calendar else "UTC")
            when = rule.last_occurrence(now, tz)
            origin = Origin("scheduler", "schedule",
                            f"{client}@{when.astimezone(tz).date().isoformat()}")
            try:
                with transaction(ctx.sessions) as session:
                    if ctx.runs.find_by_origin(session, origin, playbook.id) is not None:
                        continue
                    run = ctx.runs.launch(session, playbook.id, client=client,
                                          inputs=entry.inputs, by="scheduler", origin=origin)
                    launched.append(run.id)
            except (HubError, ValueError) as exc:
                log.error("scheduled_launch_failed", playbook=playbook.id, client=client,
                          reason=str(exc))
    if launched:
        log.info("scheduled_runs_launched", count=len(launched))
    return launched


def _clients(ctx: HubContext, entry: ScheduleEntry) -> list[str]:
    if entry.clients != "all":
        return list(entry.clients)
    with ctx.sessions() as session:
        return list(session.execute(select(Client.key).order_by(Client.key)).scalars())


def check(ctx: HubContext) -> list[ScheduleEntry]:
    """Load the schedules for this hub (for start-up and the periodic job)."""
    library = ctx.playbooks()
    return load_schedules(ctx.settings.config_dir / "schedules.yaml",
                          {p.id for p in library}, {p.id: p.schedule for p in library})


