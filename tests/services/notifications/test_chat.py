"""Teams and Slack incoming webhooks get their documented formats (an Adaptive Card in a
message attachment; Block Kit with a text fallback); a failing channel is retried, then a
dead letter, and never holds up the others; quiet hours hold a person's messages."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.core.states import NoteStatus
from hub.runtime.process import Runtime
from hub.services.deadletters import list_dead, revive
from hub.services.notification_delivery import deliver_due
from hub.services.notifications import Notifier, notify
from hub.store.db import transaction
from tests.pipeline.conftest import Clock
from tests.services.notifications.conftest import rows
from tests.services.notifications.servers import Hooks, SMTPServer


def overdue_for_alice(rt: Runtime, clock: Clock) -> int:
    """A run whose first step alice is told about (she is the service manager)."""
    with transaction(rt.ctx.sessions) as session:
        run = rt.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob")
        notify(Notifier(rt.ctx.settings, rt.ctx.team), session, "overdue", run, "revoke",
               to=["manager"], now=clock())
        return run.id


def test_teams_gets_an_adaptive_card_and_slack_blocks(runtime: Runtime, hooks: Hooks,
                                                      smtp: SMTPServer, clock: Clock) -> None:
    """Alice hears of the overdue step on all three channels; the Teams body is a message
    with one Adaptive Card attachment, the Slack body a header, a section and a button."""
    run_id = overdue_for_alice(runtime, clock)
    deliver_due(runtime.ctx)
    link = f"http://hub.test/runs/{run_id}"
    [teams] = hooks.bodies("/teams/alice")
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, body = card["body"]
    assert title["text"] == "[msphub] OVERDUE: Revoke all access (Acme Corp)"
    assert "Hello Alice Smith" in body["text"] and "Revoke all access" in body["text"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in msphub",
                                "url": link}]
    [slack] = hooks.bodies("/slack/alice")
    assert slack["text"] == "[msphub] OVERDUE: Revoke all access (Acme Corp)"
    header, section, actions = slack["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": slack["text"]}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "is overdue" in section["text"]["text"]
    assert actions["elements"][0]["url"] == link
    [mail] = smtp.to("alice@msp.example")
    assert "OVERDUE: Revoke all access" in mail.message["Subject"]


def test_a_failing_channel_is_retried_then_dead_and_the_others_are_delivered(
        runtime: Runtime, hooks: Hooks, smtp: SMTPServer, clock: Clock) -> None:
    """Given Slack answering 500, when delivery runs, alice's email and Teams card arrive and
    the Slack message waits with backoff; after the last attempt it is a dead letter an
    admin can retry, and then it goes."""
    # Given
    hooks.answer["/slack/alice"] = 500
    overdue_for_alice(runtime, clock)
    # When
    first = deliver_due(runtime.ctx)
    # Then
    [slack] = rows(runtime, channel="slack", recipient="alice")
    assert first.retrying == (slack.id,) and slack.status == NoteStatus.PENDING.value
    assert "answered 500" in (slack.last_error or "")
    assert smtp.to("alice@msp.example") and len(hooks.bodies("/teams/alice")) == 1
    attempts = 1
    while attempts < runtime.ctx.settings.notification_max_attempts:  # bounded: 8 tries
        clock.advance(hours=1)
        deliver_due(runtime.ctx)
        attempts += 1
    [slack] = rows(runtime, channel="slack", recipient="alice")
    assert slack.status == NoteStatus.DEAD.value and slack.attempts == attempts
    assert len(hooks.bodies("/slack/alice")) == attempts
    assert [d.id for d in list_dead(runtime.ctx) if d.kind == "notification"] == [slack.id]
    # an admin retries once Slack is back
    hooks.answer.pop("/slack/alice")
    assert revive(runtime.ctx, "notification", slack.id)
    assert deliver_due(runtime.ctx).sent == (slack.id,)
    assert len(smtp.to("alice@msp.example")) == 1  # nothing else was sent again


def test_a_webhook_that_is_gone_is_a_dead_letter_at_once(runtime: Runtime, hooks: Hooks,
                                                         clock: Clock) -> None:
    """404 from a webhook will not get better: no retries."""
    hooks.answer["/teams/alice"] = 404
    overdue_for_alice(runtime, clock)
    report = deliver_due(runtime.ctx)
    [teams] = rows(runtime, channel="teams")
    assert report.dead == (teams.id,) and "answered 404" in (teams.last_error or "")


def test_quiet_hours_hold_messages_until_they_end(runtime: Runtime, smtp: SMTPServer,
                                                  clock: Clock) -> None:
    """Erin's quiet hours (19:00 to 07:30 London): a notification at 22:00 waits until 07:30."""
    clock.now = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)  # London is on UTC in November
    with transaction(runtime.ctx.sessions) as session:
        run = runtime.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob")
        notify(Notifier(runtime.ctx.settings, runtime.ctx.team), session, "due_soon", run,
               "revoke", to=["person:erin"], now=clock())
    [held] = rows(runtime, recipient="erin")
    assert held.next_attempt_at == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    deliver_due(runtime.ctx)
    assert not smtp.to("erin@msp.example")
    clock.now = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    deliver_due(runtime.ctx)
    assert len(smtp.to("erin@msp.example")) == 1


def test_one_notification_per_fact(runtime: Runtime, clock: Clock) -> None:
    """The same fact queued twice (a retried job) is one row per person and channel."""
    with transaction(runtime.ctx.sessions) as session:
        run = runtime.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob")
        notifier = Notifier(runtime.ctx.settings, runtime.ctx.team)
        for _ in range(2):
            notify(notifier, session, "overdue", run, "revoke", now=clock())
    overdue = rows(runtime, kind="overdue")
    # carol (assignee: email, slack) and alice (manager: email, teams, slack)
    assert sorted((r.recipient, r.channel) for r in overdue) == [
        ("alice", "email"), ("alice", "slack"), ("alice", "teams"),
        ("carol", "email"), ("carol", "slack")]


def test_a_burst_goes_out_in_one_job_a_few_at_a_time(runtime: Runtime, hooks: Hooks,
                                                     clock: Clock) -> None:
    """Twelve messages, claimed five at a time: one job sends them all, each once."""
    with transaction(runtime.ctx.sessions) as session:
        run = runtime.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:bob")
        notifier = Notifier(runtime.ctx.settings, runtime.ctx.team)
        for n in range(12):
            notify(notifier, session, "overdue", run, "revoke", to=["person:alice"],
                   fact=f"test/{n}", now=clock(), channels=["teams"])
    report = deliver_due(runtime.ctx, limit=5)
    assert len(report.sent) == len(rows(runtime)) >= 12  # and the launch's own messages
    assert len(hooks.bodies("/teams/alice")) == 12


def test_a_broken_template_is_a_dead_letter_not_a_lost_fact(runtime: Runtime,
                                                            clock: Clock) -> None:
    """An MSP's edited template that fails to render: the run still launches and the
    notifications are dead letters naming the template, not silently dropped."""
    own = runtime.ctx.settings.notification_templates
    own.mkdir(parents=True, exist_ok=True)
    (own / "overdue.txt").write_text("Hello {{ recipient.nickname }}\n")
    overdue_for_alice(runtime, clock)
    dead = rows(runtime, kind="overdue")
    assert {r.status for r in dead} == {NoteStatus.DEAD.value} and len(dead) == 3
    assert "overdue.txt" in (dead[0].last_error or "")
