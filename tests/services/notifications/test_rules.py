"""Mapping rules for people: a ``notify`` rule on a ticket event reaches the configured
person on email, Teams and Slack; a ``note`` rule puts one internal note on the ticket;
a replayed event tells nobody twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.core.events import Event
from hub.core.states import InboxStatus
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.inbox import add_events, reopen
from hub.services.notification_delivery import deliver_due
from hub.services.pipeline import process_batch
from hub.store.db import transaction
from hub.store.models import InboxEvent, OutboxNote
from tests.pipeline.conftest import Clock
from tests.pipeline.fakes import FakePSA
from tests.services.notifications.conftest import rows
from tests.services.notifications.servers import Hooks, SMTPServer

RULES = """\
rules:
  - id: vip-high-priority-tells-manager
    on: ticket.created
    if:
      ticket.priority: {in: [High, Critical]}
      client.key: ACME
    notify:
      to: manager
      channels: [email, teams, slack]
      subject: "High-priority ticket {{ subject.id }} for {{ client.name }}"
      text: "{{ ticket.summary }} (priority {{ ticket.priority }})"
  - id: high-priority-tells-dispatcher
    on: ticket.created
    if: {ticket.priority: High}
    notify:
      to: "role:dispatcher"
      text: "Please dispatch {{ subject.id }}: {{ ticket.summary }}"
  - id: sla-warning-notes-ticket
    on: ticket.updated
    if: {ticket.status: {matches: "(?i)sla warning"}}
    note:
      text: "SLA warning: {{ ticket.summary }}."
"""


@pytest.fixture
def rules(runtime: Runtime) -> Runtime:
    Path(runtime.ctx.settings.mappings_dir, "people.yaml").write_text(RULES)
    runtime.rules.maybe_reload()
    return runtime


def ticket(kind: str, ticket_id: str, data: dict[str, object], marker: str = "1") -> Event:
    return Event.model_validate({
        "source": "psa", "vendor": "fakepsa", "kind": kind,
        "dedupe_key": f"ticket:{ticket_id}:{marker}", "occurred_at": "2026-11-20T09:59:00Z",
        "client": {"id": "ACME", "name": "Acme Ltd"},
        "subject": {"type": "ticket", "id": ticket_id},
        "data": {"ticket": {"id": ticket_id, **data}},
    })


def process(rt: Runtime, clock: Clock, event: Event) -> InboxEvent:
    with transaction(rt.ctx.sessions) as session:
        [event_id] = add_events(session, [event], via="webhook", now=clock())
    process_batch(rt.ctx, rt.live_rules(), [event_id])
    with rt.ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        assert row is not None
        return row


def replay(rt: Runtime, event_id: int) -> None:
    with transaction(rt.ctx.sessions) as session:
        reopen(session, event_id)
    process_batch(rt.ctx, rt.live_rules(), [event_id])


def test_a_notify_rule_reaches_the_manager_on_email_teams_and_slack(
        rules: Runtime, clock: Clock, smtp: SMTPServer, hooks: Hooks) -> None:
    """Given a high-priority ACME ticket, when it is processed and the notifications sent,
    alice (ACME's service manager) gets the rule's message by email, in Teams and in Slack,
    and bob (dispatcher) by his own channel, email; a replay sends nothing again."""
    # Given / When
    row = process(rules, clock, ticket("ticket.created", "T-100",
                                       {"priority": "High", "summary": "Server down"}))
    assert row.status == InboxStatus.DONE
    effects = [a for a in (row.result or {})["actions"] if a.get("effect") == "notified"]
    assert [e["people"] for e in effects] == [["alice"], ["bob"]]
    deliver_due(rules.ctx)
    # Then
    [mail] = smtp.to("alice@msp.example")
    subject = "[msphub] High-priority ticket T-100 for Acme Corp"
    assert mail.message["Subject"].strip() == subject
    plain = str(mail.message.get_body(("plain",)).get_content())
    assert "Server down (priority High)" in plain
    assert "psa ticket T-100 for Acme Corp (ticket.created)" in plain
    assert f"http://hub.test/ops/events/{row.id}" in plain
    [card] = hooks.bodies("/teams/alice")
    assert card["attachments"][0]["content"]["body"][0]["text"] == subject
    [slack] = hooks.bodies("/slack/alice")
    assert slack["text"] == subject and "Server down" in slack["blocks"][1]["text"]["text"]
    [bob] = smtp.to("bob@msp.example")
    assert "Please dispatch T-100: Server down" in str(
        bob.message.get_body(("plain",)).get_content())
    # a replay of the event tells nobody twice
    before = len(rows(rules))
    replay(rules, row.id)
    deliver_due(rules.ctx)
    assert len(rows(rules)) == before and len(smtp.received) == 2
    assert len(hooks.bodies("/teams/alice")) == len(hooks.bodies("/slack/alice")) == 1


def test_a_low_priority_ticket_tells_nobody(rules: Runtime, clock: Clock) -> None:
    """The rules' conditions hold: no match, no notification."""
    row = process(rules, clock, ticket("ticket.created", "T-101", {"priority": "Low"}))
    assert row.status == InboxStatus.IGNORED and rows(rules) == []


def test_a_note_rule_puts_one_internal_note_on_the_ticket(rules: Runtime, clock: Clock,
                                                          psa: FakePSA) -> None:
    """Given a ticket entering its SLA warning stage, the note rule queues one note on that
    ticket; it is posted once, also when the event is replayed."""
    row = process(rules, clock, ticket("ticket.updated", "T-200", {
        "status": "SLA Warning", "summary": "Printer offline"}))
    assert row.status == InboxStatus.DONE
    replay(rules, row.id)
    with rules.ctx.sessions() as session:
        notes = session.execute(select(OutboxNote)).scalars().all()
    assert [(n.source, n.ticket_id, n.kind, n.run_id) for n in notes] == [
        ("psa", "T-200", "rule_note", None)]
    writeback.deliver_many(rules.ctx, rules.sources, [notes[0].id])
    [posted] = psa.notes["T-200"]
    assert posted["text"].startswith("SLA warning: Printer offline.\n[msphub:")


def test_a_note_rule_on_an_alert_fails_visibly(rules: Runtime, clock: Clock) -> None:
    """A note needs a ticket: on an event about something else the action fails, named."""
    Path(rules.ctx.settings.mappings_dir, "people.yaml").write_text(RULES + """\
  - id: alert-notes
    on: alert.raised
    note: {text: "alert"}
""")
    rules.rules.maybe_reload()
    row = process(rules, clock, Event.model_validate({
        "source": "psa", "vendor": "fakepsa", "kind": "alert.raised", "dedupe_key": "a:1",
        "occurred_at": "2026-11-20T09:59:00Z", "client": {"id": "ACME"},
        "subject": {"type": "alert", "id": "A-1"}, "data": {}}))
    assert row.status == InboxStatus.FAILED
    assert "puts a note on a ticket" in (row.last_error or str(row.result))
