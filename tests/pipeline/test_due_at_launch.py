"""Due dates at launch follow the originating event's time and the leaver's last day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dramatiq import Worker
from sqlalchemy import select

from hub.runtime.process import Runtime
from hub.store.db import transaction
from hub.store.models import Run, RunStep
from tests.pipeline.conftest import Clock, drain
from tests.pipeline.test_inprocess import leaver_event, post


def due_dates(rt: Runtime, run_id: int) -> dict[str, datetime | None]:
    with rt.ctx.sessions() as s:
        rows = s.execute(select(RunStep.step_id, RunStep.due_at)
                         .where(RunStep.run_id == run_id)).all()
        return {step: due for step, due in rows}


def test_launch_counts_from_the_event_and_the_last_day(runtime: Runtime) -> None:
    """Confirm within 4 h of the ticket; revoke 4 h after 17:00 on the last day in the
    client's calendar (ACME: New York, from team.yaml); delete 30 days after the last day."""
    with transaction(runtime.ctx.sessions) as session:
        run = runtime.ctx.runs.launch(
            session, "user-offboarding", client="ACME", by="user:test",
            inputs={"leaver_name": "Jane Doe", "last_day": "2026-11-27"},
            occurred_at=datetime(2026, 11, 20, 8, 15, tzinfo=UTC))
        run_id = run.id
    due = due_dates(runtime, run_id)
    assert due["confirm-leaver"] == datetime(2026, 11, 20, 12, 15, tzinfo=UTC)
    assert due["disable-sign-in"] == datetime(2026, 11, 28, 2, tzinfo=UTC)  # 17:00 EST + 4h
    assert due["delete-account"] == datetime(2026, 12, 27, 5, tzinfo=UTC)   # 00:00 EST + 30d


def test_a_ticket_processed_late_is_due_from_when_it_was_logged(runtime: Runtime,
                                                                worker: Worker,
                                                                clock: Clock) -> None:
    """The pipeline passes the event's time: a leaver ticket logged at 09:59 but processed
    at 11:30 has its request check due at 13:59, and no last day means 4 h from launch."""
    # Given a leaver ticket that happened at 09:59 and reaches the hub at 11:30
    clock.now = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    assert post(runtime, leaver_event()) == 202
    drain(runtime, worker)
    with runtime.ctx.sessions() as s:
        run_id = s.execute(select(Run.id)).scalar_one()
    # Then the first step counts from the ticket, the revocation from the launch
    due = due_dates(runtime, run_id)
    assert due["confirm-leaver"] == datetime(2026, 11, 20, 13, 59, tzinfo=UTC)
    assert due["disable-sign-in"] == clock.now + timedelta(hours=4)


def test_a_scheduled_run_records_its_occurrence(runtime: Runtime, clock: Clock) -> None:
    """A run the scheduler launches late (here on the 20th for the 1st) records the
    occurrence, which is also its event time for `after event` due rules."""
    from hub.services.scheduled_launches import launch_due

    (runtime.ctx.settings.config_dir / "schedules.yaml").write_text(
        "schedules:\n  - playbook: monthly-maintenance\n    clients: [ACME]\n"
        "    inputs: {has_servers: false}\n")
    launch_due(runtime.ctx, runtime.current_schedules())
    with runtime.ctx.sessions() as s:
        run = s.execute(select(Run)).unique().scalar_one()
        # 09:00 New York on 1 November 2026: EST (the clocks went back at 06:00 UTC)
        assert run.options["occurrence"] == "2026-11-01T14:00:00+00:00"
        assert run.launched_at == clock.now
