"""A tick that finds nothing to tick is recorded as ``no_run_to_tick`` (client, step,
playbooks, why), not as an empty "ticked"; the event still ends ``done``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete

from hub.core.events import ClientRef, Event, EventKind, SubjectRef
from hub.runtime.process import Runtime
from hub.services.actions import NO_RUN_TO_TICK, effects_of
from hub.services.inbox import add_events
from hub.services.pipeline import process_event
from hub.store.db import transaction
from hub.store.models import InboxEvent, RunStep
from tests.pipeline.test_clients import launch_maintenance, step

WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def backup_resolved(runtime: Runtime, alert_id: str) -> int:
    """Store a resolved backup alert on ACME's RMM site; returns its inbox id."""
    event = Event(source="rmm", vendor="datto-rmm", kind=EventKind.ALERT_RESOLVED,
                  dedupe_key=f"alert:{alert_id}:resolved", occurred_at=WHEN,
                  client=ClientRef(id="site-acme-1", name="Acme HQ", type="site"),
                  subject=SubjectRef(type="alert", id=alert_id),
                  data={"alert": {"id": alert_id, "category": "backup",
                                  "message": "Backup job completed"}})
    with transaction(runtime.ctx.sessions) as session:
        [event_id] = add_events(session, [event], via="poll", now=WHEN)
    return event_id


def stored(runtime: Runtime, event_id: int) -> tuple[str, dict[str, Any]]:
    """The event's status and stored result."""
    with runtime.ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        assert row is not None
        return row.status, dict(row.result or {})


def test_an_alert_for_a_client_without_an_active_run_is_no_run_to_tick(
        runtime: Runtime) -> None:
    """ACME has no run: the effect names client, step and playbooks; the event is done."""
    event_id = backup_resolved(runtime, "A-1")
    result = process_event(runtime.ctx, runtime.live_rules(), event_id)
    [action] = result.actions
    assert action["effect"] == NO_RUN_TO_TICK
    assert (action["client"], action["step"], action["playbooks"]) == (
        "ACME", "verify-backups", ["client-onboarding", "monthly-maintenance"])
    assert action["active_runs_without_step"] == []
    assert action["reason"] == ("client 'ACME' has no active run of client-onboarding, "
                                "monthly-maintenance")
    status, saved = stored(runtime, event_id)
    assert status == "done" and saved["actions"] == result.actions
    assert effects_of(saved) == [NO_RUN_TO_TICK]


def test_active_runs_without_the_step_are_named(runtime: Runtime) -> None:
    """A run whose pinned playbook lacks the step (an older version) ticks nothing: the
    effect says which runs were there and why none was ticked."""
    run_id = launch_maintenance(runtime)
    with transaction(runtime.ctx.sessions) as session:  # as if pinned before the step existed
        session.execute(delete(RunStep).where(RunStep.run_id == run_id,
                                              RunStep.step_id == "verify-backups"))
    event_id = backup_resolved(runtime, "A-2")
    [action] = process_event(runtime.ctx, runtime.live_rules(), event_id).actions
    assert action["effect"] == NO_RUN_TO_TICK
    assert action["active_runs_without_step"] == [run_id]
    assert action["reason"] == "active run(s) of monthly-maintenance have no step " \
        "'verify-backups'"


def test_a_tick_that_reaches_a_run_is_still_ticked(runtime: Runtime) -> None:
    """With ACME's maintenance run active, the same alert ticks it (effect ``ticked``)."""
    run_id = launch_maintenance(runtime)
    event_id = backup_resolved(runtime, "A-3")
    [action] = process_event(runtime.ctx, runtime.live_rules(), event_id).actions
    assert action["effect"] == "ticked"
    assert action["runs"] == [{"run_id": run_id, "outcome": "done"}]
    assert step(runtime, run_id, "verify-backups").status.value == "done"
