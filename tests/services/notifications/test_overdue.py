"""The clock's facts: a step due soon, overdue, then escalated — each once per step, in the
audit trail, to the right people; escalation hands the step to the fallback role."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.core.checklists.engine import TicketRef
from hub.core.states import NoteStatus
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.notification_delivery import deliver_due
from hub.services.overdue import find_overdue_steps
from hub.store.db import transaction
from hub.store.models import AuditEntry, RunStep
from tests.pipeline.conftest import Clock
from tests.pipeline.fakes import FakePSA
from tests.services.notifications.conftest import LEAVER_ACCESS, rows
from tests.services.notifications.servers import Hooks, SMTPServer


@pytest.fixture(autouse=True)
def escalating(runtime: Runtime) -> None:
    """Revoke escalates to the senior engineer, and the manager is told, 2 h after it is due."""
    path = Path(runtime.ctx.settings.playbooks_dir, "leaver-access.yaml")
    path.write_text(LEAVER_ACCESS.replace(
        "    due: 4h\n",
        "    due: 4h\n    escalate: {after: 2h, to_role: senior-engineer, notify: manager}\n"))


def facts(rt: Runtime, action: str) -> list[AuditEntry]:
    with rt.ctx.sessions() as session:
        return list(session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.id)).scalars().all())


def launch(rt: Runtime) -> int:
    """Revoke (carol, due in 4 h, escalates 2 h after) then Confirm (bob)."""
    with transaction(rt.ctx.sessions) as session:
        return rt.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob").id


def step(rt: Runtime, run_id: int, step_id: str) -> RunStep:
    with rt.ctx.sessions() as session:
        return session.execute(select(RunStep).where(RunStep.run_id == run_id,
                                                     RunStep.step_id == step_id)).scalar_one()


def test_due_soon_then_overdue_each_once_per_step(runtime: Runtime, clock: Clock) -> None:
    """An hour before its due time carol is reminded once; once late, carol and the manager
    hear it once, however often the job runs."""
    run_id = launch(runtime)
    clock.advance(hours=2)
    find_overdue_steps(runtime.ctx)
    assert rows(runtime, kind="due_soon") == [] and facts(runtime, "due_soon") == []
    clock.advance(hours=1, minutes=10)  # 13:10, due 14:00
    for _ in range(3):
        find_overdue_steps(runtime.ctx)
        clock.advance(minutes=1)
    [reminder] = facts(runtime, "due_soon")
    assert reminder.run_id == run_id and reminder.step_id == "revoke"
    assert {(r.recipient, r.channel) for r in rows(runtime, kind="due_soon")} == {
        ("carol", "email"), ("carol", "slack")}
    clock.advance(hours=1)  # 14:13: late
    for _ in range(3):
        find_overdue_steps(runtime.ctx)
        clock.advance(minutes=1)
    assert len(facts(runtime, "overdue")) == 1
    assert sorted({r.recipient for r in rows(runtime, kind="overdue")}) == ["alice", "carol"]
    assert len(rows(runtime, kind="overdue")) == 5  # carol: email+slack; alice: 3 channels
    assert step(runtime, run_id, "revoke").due_soon_notified_at is not None


def test_escalation_reassigns_to_the_fallback_role_and_tells_the_manager_once(
        runtime: Runtime, clock: Clock, smtp: SMTPServer, hooks: Hooks) -> None:
    """Given revoke overdue by more than 2 h, when the job runs (several times), the step goes
    to dan (senior-engineer), one 'escalated' fact records it, alice (manager) is told on
    her channels and dan is told the step is his."""
    # Given
    run_id = launch(runtime)
    clock.advance(hours=4, minutes=5)
    find_overdue_steps(runtime.ctx)
    assert facts(runtime, "escalated") == []
    clock.advance(hours=2)  # 2 h 5 min late
    # When
    for _ in range(3):
        find_overdue_steps(runtime.ctx)
        clock.advance(minutes=1)
    # Then
    [fact] = facts(runtime, "escalated")
    assert fact.step_id == "revoke" and fact.actor == "scheduler"
    assert fact.data["from"] == "carol" and fact.data["to"] == "dan"
    assert fact.data["to_role"] == "senior-engineer" and fact.data["after"] == "2 hours"
    assert step(runtime, run_id, "revoke").assignee == "dan"
    reassigned = [f for f in facts(runtime, "assigned") if f.step_id == "revoke"]
    assert [f.data["assignee"] for f in reassigned] == ["dan"]
    escalated = rows(runtime, kind="escalated")
    # alice (the manager) on all her channels; the new assignee is told by 'assigned'
    assert sorted((r.recipient, r.channel) for r in escalated) == [
        ("alice", "email"), ("alice", "slack"), ("alice", "teams")]
    assert [r.recipient for r in rows(runtime, kind="assigned") if r.step_id == "revoke"
            and r.recipient == "dan"] == ["dan"]
    deliver_due(runtime.ctx)
    [mail] = smtp.to("alice@msp.example")[-1:]
    assert "ESCALATED: Revoke all access (Acme Corp) is 2.1 h late" in \
        mail.message["Subject"].replace("\n", "").replace("  ", " ")
    body = str(mail.message.get_body(("plain",)).get_content())
    assert "reassigned from carol to dan" in body
    assert any("ESCALATED" in b["text"] for b in hooks.bodies("/slack/alice"))
    assert {r.status for r in rows(runtime)} == {NoteStatus.SENT.value}


def test_overdue_note_still_goes_to_the_ticket(runtime: Runtime, clock: Clock,
                                               psa: FakePSA) -> None:
    """The PSA ticket is a channel too: a run from a ticket gets one overdue note."""
    with transaction(runtime.ctx.sessions) as session:
        runtime.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob",
                                ticket=TicketRef("psa", "T-7"))
    clock.advance(hours=5)
    note_ids = find_overdue_steps(runtime.ctx) + find_overdue_steps(runtime.ctx)
    writeback.deliver_many(runtime.ctx, runtime.sources, note_ids)
    overdue = [n for n in psa.all_notes() if "overdue" in n]
    assert len(overdue) == 1 and "Revoke all access" in overdue[0]
