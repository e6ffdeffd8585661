"""The run service over SQLAlchemy, on SQLite and PostgreSQL: launch, advance, pin, search."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.core.calendars import DueRule, due_at
from hub.core.checklists.engine import TicketRef
from hub.core.states import RunStatus, StepStatus
from hub.errors import NotAllowed, NotFound, StepLocked
from hub.services.context import HubContext
from hub.services.runs import RunFilter
from hub.store import audit
from hub.store.db import transaction
from hub.store.models import AuditEntry, Client, PlaybookVersion, Run
from tests.store.conftest import FRIDAY_AFTERNOON, Hub

TICKET = TicketRef("cw-prod", "T-1001")


def launch(ctx: HubContext, playbook: str = "new-starter", *, client: str = "ACME",
           inputs: dict[str, Any] | None = None, ticket: TicketRef | None = None,
           by: str = "user:alice") -> int:
    """Launch a run in its own transaction; return its id."""
    if inputs is None and playbook == "new-starter":
        inputs = {"starter": "Jo Starter"}
    with transaction(ctx.sessions) as session:
        return ctx.runs.launch(session, playbook, client=client, inputs=inputs, by=by,
                               ticket=ticket).id


def complete(ctx: HubContext, run_id: int, *step_ids: str, by: str = "user:carol",
             evidence: str | None = None) -> None:
    for step_id in step_ids:
        with transaction(ctx.sessions) as session:
            ctx.runs.complete(session, run_id, step_id, by=by, evidence=evidence)


def steps(ctx: HubContext, run_id: int) -> dict[str, str]:
    """Step id → status, read back from the database in a fresh session."""
    with ctx.sessions() as session:
        return {s.step_id: s.status.value for s in ctx.runs.get(session, run_id).steps}


def audit_actions(ctx: HubContext, run_id: int) -> list[tuple[str, str | None]]:
    with ctx.sessions() as session:
        rows = session.execute(
            select(AuditEntry.action, AuditEntry.step_id).where(AuditEntry.run_id == run_id)
            .order_by(AuditEntry.id)
        ).all()
    return [(r.action, r.step_id) for r in rows]


def audit_count(ctx: HubContext) -> int:
    with ctx.sessions() as session:
        return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


# ---------------------------------------------------------------------------- launch


def test_launch_persists_run_inputs_ticket_and_step_states(hub: Hub) -> None:
    """A launched run is saved with coerced inputs, its ticket, pinned version and steps."""
    # When a run is launched with string inputs from a ticket
    run_id = launch(hub.ctx, inputs={"starter": "Jo Starter", "laptop": "yes"}, ticket=TICKET)
    # Then it reads back from a fresh session exactly as launched
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
        row = hub.ctx.runs.load(session, run_id)
        client_key, version = row.client.key, row.playbook_version.version
    assert state.status is RunStatus.ACTIVE
    assert dict(state.inputs) == {"starter": "Jo Starter", "laptop": True}
    assert state.ticket == TICKET
    assert state.launched_at == FRIDAY_AFTERNOON
    assert state.launched_by == "user:alice"
    assert (client_key, version, state.playbook_version) == ("ACME", 1, 1)
    assert {s.step_id: s.status for s in state.steps} == {
        "intake": StepStatus.OPEN,
        "build-laptop": StepStatus.LOCKED,
        "review": StepStatus.LOCKED,
        "handover": StepStatus.LOCKED,
    }
    assert audit_actions(hub.ctx, run_id) == [("launched", None), ("assigned", None)]


def test_launch_with_a_false_condition_saves_the_step_as_not_applicable(hub: Hub) -> None:
    """``laptop: no`` makes the laptop step not applicable; the handover waits only for review."""
    run_id = launch(hub.ctx, inputs={"starter": "Jo", "laptop": "no"})
    assert steps(hub.ctx, run_id)["build-laptop"] == "not_applicable"
    complete(hub.ctx, run_id, "intake", "review")
    assert steps(hub.ctx, run_id)["handover"] == "open"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "input 'starter' (Starter's name) is required"),
        ({"starter": "Jo", "laptop": "perhaps"}, "input 'laptop' must be true or false"),
        ({"starter": "Jo", "desk": "3F"}, "unknown input(s): desk"),
    ],
)
def test_launch_with_bad_inputs_is_refused_and_saves_nothing(
    hub: Hub, inputs: dict[str, Any], message: str
) -> None:
    """Ill-typed or missing inputs raise ValueError naming the input; no run is stored."""
    with pytest.raises(ValueError) as info, transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.launch(session, "new-starter", client="ACME", inputs=inputs, by="user:a")
    assert str(info.value) == message
    with hub.ctx.sessions() as session:
        assert session.execute(select(func.count()).select_from(Run)).scalar_one() == 0


def test_launch_of_an_unknown_playbook_is_not_found(hub: Hub) -> None:
    """An unknown playbook id raises NotFound."""
    with pytest.raises(NotFound, match="playbook 'nope' does not exist"), \
            transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.launch(session, "nope", client="ACME", by="user:a")


@pytest.mark.parametrize(
    ("client", "assignees"),
    [
        # config/team.yaml: ACME overrides engineer → erin; service-desk is global (alice)
        ("ACME", {"intake": "alice", "build-laptop": "erin", "review": "dan",
                  "handover": "erin"}),
        # "19300" overrides service-desk → [bob, alice]; engineer is global (carol)
        ("19300", {"intake": "bob", "build-laptop": "carol", "review": "dan",
                   "handover": "carol"}),
        # no override: the global primaries
        ("OTHER", {"intake": "alice", "build-laptop": "carol", "review": "dan",
                   "handover": "carol"}),
    ],
)
def test_roles_resolve_through_team_yaml_with_client_overrides(
    hub: Hub, client: str, assignees: dict[str, str]
) -> None:
    """Each step goes to the role's primary member for the client; ``assignee`` wins."""
    run_id = launch(hub.ctx, client=client)
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
    assert {s.step_id: s.assignee for s in state.steps} == assignees


@pytest.mark.parametrize(
    ("client", "calendar", "expected"),
    [
        # ACME uses us-east (New York, 08:00-18:00); launch is Friday 15:00 local.
        ("ACME", "us-east", {
            "intake": datetime(2025, 6, 16, 17, 0, tzinfo=UTC),  # Mon 13:00 EDT (3h Fri + 5h)
            "build-laptop": datetime(2025, 6, 18, 22, 0, tzinfo=UTC),  # Wed 18:00 EDT
            "review": datetime(2025, 6, 15, 19, 0, tzinfo=UTC),  # 2 calendar days
            "handover": datetime(2025, 6, 13, 23, 0, tzinfo=UTC),  # 4 elapsed hours
        }),
        # 19300 uses default (London, 09:00-17:30); launch is Friday 20:00 local (closed).
        ("19300", "default", {
            "intake": datetime(2025, 6, 16, 16, 0, tzinfo=UTC),  # Mon 17:00 BST
            "build-laptop": datetime(2025, 6, 19, 16, 30, tzinfo=UTC),  # Thu 17:30 BST
            "review": datetime(2025, 6, 15, 19, 0, tzinfo=UTC),
            "handover": datetime(2025, 6, 13, 23, 0, tzinfo=UTC),
        }),
    ],
)
def test_due_dates_use_the_clients_calendar_across_the_weekend(
    hub: Hub, client: str, calendar: str, expected: dict[str, datetime]
) -> None:
    """Due dates follow the client's calendar from team.yaml; business time skips the weekend."""
    # Given a launch on Friday afternoon
    run_id = launch(hub.ctx, client=client)
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
    due = {s.step_id: s.due_at for s in state.steps}
    # Then every due date is what hub.core.calendars computes for that calendar
    cal = hub.ctx.calendars[calendar]
    rules = {"intake": "8 business hours", "build-laptop": "3 business days",
             "review": "2 days", "handover": "4h"}
    assert due == {k: due_at(FRIDAY_AFTERNOON, DueRule.parse(r), cal) for k, r in rules.items()}
    # And, spelled out, the business deadlines land after the weekend
    assert due == expected
    assert all(d is not None and d.tzinfo is not None for d in due.values())


# ---------------------------------------------------------------------------- advancing


def test_complete_persists_who_when_evidence_and_unlocks_the_next_steps(hub: Hub) -> None:
    """Completing a step stores done_by, done_at (the clock), evidence; dependants open."""
    # Given a launched run and an hour later
    run_id = launch(hub.ctx)
    done_at = hub.clock.advance(timedelta(hours=1))
    # When the first step is completed with evidence
    with transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.complete(session, run_id, "intake", by="user:alice",
                              evidence="approved by HR", note="called back")
    # Then the change is stored and read back in a new session
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
    intake = state.step("intake")
    assert (intake.status, intake.done_by, intake.done_at, intake.evidence, intake.note) == (
        StepStatus.DONE, "user:alice", done_at, "approved by HR", "called back")
    assert state.step("build-laptop").status is StepStatus.OPEN
    assert state.step("review").status is StepStatus.OPEN
    assert audit_actions(hub.ctx, run_id)[-1] == ("step_done", "intake")


def test_complete_of_a_locked_step_raises_step_locked_and_changes_nothing(hub: Hub) -> None:
    """A locked step is refused naming its blockers; state and audit are untouched."""
    # Given a run whose first step is done
    run_id = launch(hub.ctx)
    complete(hub.ctx, run_id, "intake")
    before_steps, before_audit = steps(hub.ctx, run_id), audit_count(hub.ctx)
    # When the handover is completed too early
    with pytest.raises(StepLocked) as info, transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.complete(session, run_id, "handover", by="user:erin")
    # Then both unfinished prerequisites are named and nothing was saved
    assert info.value.blockers == ["build-laptop (Build the laptop)", "review (Manager review)"]
    assert steps(hub.ctx, run_id) == before_steps
    assert audit_count(hub.ctx) == before_audit


def test_skip_persists_reason_and_protected_steps_need_a_manager(hub: Hub) -> None:
    """Skipping a 'manager' step is refused without the right, and stored with it."""
    run_id = launch(hub.ctx)
    complete(hub.ctx, run_id, "intake")
    # When a technician tries to skip the protected review
    with pytest.raises(NotAllowed, match="protected"), \
            transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.skip(session, run_id, "review", by="user:carol", reason="n/a")
    assert steps(hub.ctx, run_id)["review"] == "open"
    # When a manager skips it
    with transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.skip(session, run_id, "review", by="user:alice", reason="  known starter ",
                          may_skip_protected=True)
    # Then the skip and its reason are stored
    with hub.ctx.sessions() as session:
        review = hub.ctx.runs.get(session, run_id).step("review")
    assert (review.status, review.skip_reason, review.done_by) == (
        StepStatus.SKIPPED, "known starter", "user:alice")
    assert audit_actions(hub.ctx, run_id)[-1] == ("step_skipped", "review")


def test_run_completes_and_is_stored_completed(hub: Hub) -> None:
    """Finishing the last step stores the run as completed with its completion time."""
    run_id = launch(hub.ctx)
    complete(hub.ctx, run_id, "intake", "build-laptop", "review")
    finished = hub.clock.advance(timedelta(days=1))
    complete(hub.ctx, run_id, "handover")
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.completed_at == finished
    assert state.progress() == (4, 4)
    assert audit_actions(hub.ctx, run_id)[-2:] == [("step_done", "handover"), ("completed", None)]
    with hub.ctx.sessions() as session:
        assert audit.verify(session).ok


def test_cancel_is_stored_and_a_cancelled_run_refuses_work(hub: Hub) -> None:
    """A cancelled run keeps its reason and time; its steps can no longer be completed."""
    run_id = launch(hub.ctx)
    cancelled_at = hub.clock.advance(timedelta(minutes=5))
    with transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.cancel(session, run_id, by="user:alice", reason="offer withdrawn")
    with hub.ctx.sessions() as session:
        state = hub.ctx.runs.get(session, run_id)
    assert (state.status, state.cancel_reason, state.completed_at) == (
        RunStatus.CANCELLED, "offer withdrawn", cancelled_at)
    with pytest.raises(NotAllowed, match="cancelled"), transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.complete(session, run_id, "intake", by="user:alice")
    assert audit_actions(hub.ctx, run_id)[-1] == ("cancelled", None)


def test_comment_and_reassign_are_audited(hub: Hub) -> None:
    """Comments and reassignment are recorded; reassignment to a non-member is refused."""
    run_id = launch(hub.ctx)
    with transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.comment(session, run_id, by="user:bob", text="waiting for HR")
        hub.ctx.runs.reassign(session, run_id, "intake", assignee="bob", by="user:alice")
    with pytest.raises(NotAllowed, match="not a member"), \
            transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.reassign(session, run_id, "intake", assignee="mallory", by="user:alice")
    with hub.ctx.sessions() as session:
        assert hub.ctx.runs.get(session, run_id).step("intake").assignee == "bob"
    assert audit_actions(hub.ctx, run_id)[-2:] == [("commented", None), ("assigned", "intake")]


def test_load_of_a_missing_run_is_not_found(hub: Hub) -> None:
    """An unknown run id raises NotFound."""
    with pytest.raises(NotFound, match="run 999 does not exist"), hub.ctx.sessions() as session:
        hub.ctx.runs.get(session, 999)


# ---------------------------------------------------------------------------- version pinning

VERSION_2 = dedent(
    """\
    id: new-starter
    title: New starter (v2)
    version: 2
    inputs:
      - id: starter
        title: Starter's name
    steps:
      - id: order-hardware
        title: Order hardware
        role: engineer
      - id: welcome-pack
        title: Send the welcome pack
        after: [order-hardware]
    """
)


def _rewrite(path: Path, text: str) -> None:
    """Replace a file and move its mtime forward, so the library sees the change."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    later = before + 5_000_000_000
    os.utime(path, ns=(later, later))


def test_runs_keep_the_playbook_version_they_were_launched_with(hub: Hub) -> None:
    """After the playbook file changes, old runs keep v1 steps and new runs get v2."""
    # Given a run launched on version 1
    first = launch(hub.ctx)
    # When the playbook file is rewritten as version 2 with other steps, and a run launched
    _rewrite(hub.playbooks_dir / "new-starter.yaml", VERSION_2)
    second = launch(hub.ctx)
    # Then the first run still has the v1 steps and the second the v2 steps
    assert list(steps(hub.ctx, first)) == ["intake", "build-laptop", "review", "handover"]
    assert steps(hub.ctx, second) == {"order-hardware": "open", "welcome-pack": "locked"}
    with hub.ctx.sessions() as session:
        assert hub.ctx.runs.get(session, first).playbook_version == 1
        assert hub.ctx.runs.get(session, second).playbook_version == 2
        versions = session.execute(
            select(PlaybookVersion.version, PlaybookVersion.title).order_by(PlaybookVersion.id)
        ).all()
    assert [tuple(v) for v in versions] == [(1, "New starter"), (2, "New starter (v2)")]
    # And the first run can be completed with its v1 step ids, even by a fresh hub
    # that only knows version 2 on disk (the definition comes from the database)
    fresh = hub.rebuild()
    assert fresh.playbooks().get("new-starter").version == 2
    complete(fresh, first, "intake", "build-laptop", "review", "handover")
    with fresh.sessions() as session:
        assert fresh.runs.get(session, first).status is RunStatus.COMPLETED
    # And v1 step ids do not exist in the v2 run
    with pytest.raises(NotFound, match="no step 'intake'"), \
            transaction(fresh.sessions) as session:
        fresh.runs.complete(session, second, "intake", by="user:alice")


def test_relaunching_an_unchanged_playbook_reuses_its_version_row(hub: Hub) -> None:
    """Two runs of the same definition share one playbook_versions row."""
    launch(hub.ctx)
    launch(hub.ctx, client="19300")
    with hub.ctx.sessions() as session:
        assert session.execute(
            select(func.count()).select_from(PlaybookVersion)
        ).scalar_one() == 1


# ---------------------------------------------------------------------------- tickets


def test_same_ticket_cannot_launch_the_same_playbook_twice(hub: Hub) -> None:
    """uq_run_ticket refuses the second launch; find_by_ticket returns the first run."""
    # Given a run launched from a ticket
    first = launch(hub.ctx, ticket=TICKET)
    # When the same ticket launches the same playbook again
    with pytest.raises(IntegrityError) as info, transaction(hub.ctx.sessions) as session:
        hub.ctx.runs.launch(session, "new-starter", client="ACME", inputs={"starter": "Jo"},
                            by="user:alice", ticket=TICKET)
    # PostgreSQL names the constraint; SQLite lists its columns
    assert ("uq_run_ticket" in str(info.value)
            or "runs.ticket_source, runs.ticket_id, runs.playbook_id" in str(info.value))
    # Then only the first run exists and it is found by its ticket
    with hub.ctx.sessions() as session:
        found = hub.ctx.runs.find_by_ticket(session, TICKET, "new-starter")
        assert found is not None and found.id == first
        assert session.execute(select(func.count()).select_from(Run)).scalar_one() == 1
        assert hub.ctx.runs.find_by_ticket(session, TICKET, "quick-check") is None
        assert hub.ctx.runs.find_by_ticket(session, TicketRef("cw-prod", "other"),
                                           "new-starter") is None


def test_same_ticket_may_launch_a_different_playbook(hub: Hub) -> None:
    """The uniqueness is per (ticket, playbook)."""
    launch(hub.ctx, ticket=TICKET)
    other = launch(hub.ctx, "quick-check", ticket=TICKET)
    with hub.ctx.sessions() as session:
        found = hub.ctx.runs.find_by_ticket(session, TICKET, "quick-check")
        assert found is not None and found.id == other


def test_runs_without_a_ticket_are_not_constrained(hub: Hub) -> None:
    """Many ticketless runs of one playbook for one client may exist."""
    ids = [launch(hub.ctx) for _ in range(3)]
    assert len(set(ids)) == 3


# ---------------------------------------------------------------------------- search


@pytest.fixture
def population(hub: Hub) -> dict[str, int]:
    """Runs of both playbooks for three clients in each status."""
    ctx = hub.ctx
    runs = {
        "acme-active": launch(ctx, client="ACME"),
        "contoso-completed": launch(ctx, "quick-check", client="19300"),
        "acme-cancelled": launch(ctx, "quick-check", client="ACME"),
        "other-active": launch(ctx, client="OTHER", ticket=TICKET),
    }
    complete(ctx, runs["contoso-completed"], "check")
    with transaction(ctx.sessions) as session:
        ctx.runs.cancel(session, runs["acme-cancelled"], by="user:alice", reason="dupe")
    complete(ctx, runs["other-active"], "intake")
    return runs


def _search(hub: Hub, **filters: Any) -> list[int]:
    with hub.ctx.sessions() as session:
        return [r.id for r in hub.ctx.runs.search(session, RunFilter(**filters))]


def test_search_filters(hub: Hub, population: dict[str, int]) -> None:
    """Client, playbook and status filters combine; results are newest first."""
    p = population
    assert _search(hub) == [p["other-active"], p["acme-cancelled"], p["contoso-completed"],
                            p["acme-active"]]
    assert _search(hub, client="ACME") == [p["acme-cancelled"], p["acme-active"]]
    assert _search(hub, playbook="quick-check") == [p["acme-cancelled"], p["contoso-completed"]]
    assert _search(hub, status="active") == [p["other-active"], p["acme-active"]]
    assert _search(hub, status="completed") == [p["contoso-completed"]]
    assert _search(hub, client="ACME", status="active") == [p["acme-active"]]
    assert _search(hub, client="ACME", playbook="quick-check", status="cancelled") == [
        p["acme-cancelled"]]
    assert _search(hub, client="NOBODY") == []
    assert _search(hub, limit=2) == [p["other-active"], p["acme-cancelled"]]
    assert _search(hub, limit=2, offset=2) == [p["contoso-completed"], p["acme-active"]]


def test_search_by_assignee_finds_runs_with_unfinished_steps_for_them(
    hub: Hub, population: dict[str, int]
) -> None:
    """An assignee's runs are those where they hold an open or locked step."""
    p = population
    # erin is ACME's engineer; alice holds ACME/OTHER intake (done in OTHER)
    assert _search(hub, assignee="erin", playbook="new-starter") == [p["acme-active"]]
    assert _search(hub, assignee="alice") == [p["acme-active"]]
    assert _search(hub, assignee="carol") == [p["other-active"]]
    assert _search(hub, assignee="nobody") == []


def test_search_by_assignee_leaves_out_cancelled_runs(
    hub: Hub, population: dict[str, int]
) -> None:
    """A cancelled run is no work for anyone: erin (security) has nothing in it."""
    assert _search(hub, assignee="erin", playbook="quick-check") == []


def test_search_overdue_follows_the_clock(hub: Hub, population: dict[str, int]) -> None:
    """overdue=True lists active runs with a late step once the clock passes its due time."""
    p = population
    # Given nothing is late at launch
    assert _search(hub, overdue=True) == []
    # When the clock passes the 4h handover deadline (Friday 23:00 UTC)
    hub.clock.advance(timedelta(hours=4, minutes=1))
    # Then both active new-starter runs are overdue (the cancelled one, also late, is not)
    assert _search(hub, overdue=True) == [p["other-active"], p["acme-active"]]
    assert p["contoso-completed"] in _search(hub, overdue=False)
    assert _search(hub, overdue=True, client="OTHER") == [p["other-active"]]
    with hub.ctx.sessions() as session:
        late = hub.ctx.runs.get(session, p["acme-active"]).overdue(hub.clock())
    assert [s.step_id for s in late] == ["handover"]


def test_search_not_overdue_includes_closed_runs(hub: Hub, population: dict[str, int]) -> None:
    """overdue=True and overdue=False partition all runs: a cancelled run is never overdue."""
    hub.clock.advance(timedelta(hours=4, minutes=1))
    late, on_time = _search(hub, overdue=True), _search(hub, overdue=False)
    assert sorted(late + on_time) == sorted(population.values())
    assert population["acme-cancelled"] in on_time


def test_overdue_clears_when_the_late_steps_are_finished(hub: Hub) -> None:
    """A run stops being overdue once its late steps are finished."""
    run_id = launch(hub.ctx, "quick-check")
    hub.clock.advance(timedelta(hours=2))
    assert _search(hub, overdue=True) == [run_id]
    complete(hub.ctx, run_id, "check")
    assert _search(hub, overdue=True) == []


# ---------------------------------------------------------------------------- concurrency


def test_runs_for_one_client_are_independent(hub: Hub) -> None:
    """Two active runs of one playbook for one client advance separately."""
    first, second = launch(hub.ctx), launch(hub.ctx)
    complete(hub.ctx, first, "intake")
    assert steps(hub.ctx, first)["intake"] == "done"
    assert steps(hub.ctx, second)["intake"] == "open"
    with hub.ctx.sessions() as session:
        active = hub.ctx.runs.active_runs(session, "ACME", ["new-starter"])
        assert [r.id for r in active] == [first, second]
        assert hub.ctx.runs.active_runs(session, "ACME", ["quick-check"]) == []
        assert hub.ctx.runs.count_active(session) == 2
        assert session.execute(select(func.count()).select_from(Client)).scalar_one() == 1


def test_concurrent_launches_and_completions_for_one_client_keep_one_audit_chain(
    hub: Hub,
) -> None:
    """Threads launching and completing runs at once all succeed; the chain stays intact."""
    # Given the client and playbook version exist (see the report: first-launch race)
    seed = launch(hub.ctx)
    workers = 6
    barrier = threading.Barrier(workers)
    launched: list[int] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            run_id = launch(hub.ctx, by=f"user:worker{i}")
            complete(hub.ctx, run_id, "intake", by=f"user:worker{i}")
            if i == 0:
                complete(hub.ctx, seed, "intake")
            launched.append(run_id)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    # When six threads launch and advance runs for ACME at the same time
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every launch succeeded, each run got its own steps, and the chain verifies
    assert errors == []
    assert len(set(launched)) == workers
    for run_id in launched:
        assert steps(hub.ctx, run_id)["intake"] == "done"
    with hub.ctx.sessions() as session:
        result = audit.verify(session)
        assert hub.ctx.runs.count_active(session) == workers + 1
    assert result.ok, result
    # launched + assigned per launch, one step_done per thread, one for the seed
    assert result.checked == 2 * (workers + 1) + workers + 1
