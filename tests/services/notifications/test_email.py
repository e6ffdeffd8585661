"""Email notifications go through a real SMTP server: STARTTLS, AUTH, and a multipart
message with a plain and an HTML part that names the recipient, the work and the run."""

from __future__ import annotations

from email.message import EmailMessage

from hub.core.states import NoteStatus
from hub.runtime import periodic
from hub.runtime.process import Runtime
from hub.services.deadletters import list_dead
from hub.services.notification_delivery import deliver_due
from hub.store.db import transaction
from tests.pipeline.conftest import Clock
from tests.services.notifications.conftest import rows
from tests.services.notifications.servers import SMTP_USER, SMTPServer


def launch(rt: Runtime) -> int:
    with transaction(rt.ctx.sessions) as session:
        run = rt.ctx.runs.launch(session, "leaver-access", client="ACME", by="user:alice")
        return run.id


def parts(message: EmailMessage) -> dict[str, str]:
    """The message's text parts by content type."""
    return {part.get_content_type(): str(part.get_content())
            for part in message.walk() if part.get_content_maintype() == "text"}


def test_a_launch_emails_each_assignee_their_steps(runtime: Runtime, smtp: SMTPServer) -> None:
    """Given a run whose steps go to carol (engineer) and bob (service desk), when the
    notifications are sent, each gets one email over STARTTLS, logged in, with a plain and
    an HTML part naming their step and linking to the run."""
    # Given
    run_id = launch(runtime)
    # When
    report = deliver_due(runtime.ctx)
    # Then: carol's email and slack, bob's email (bob has only the default channel)
    assert len(report.sent) == len(rows(runtime)) == 3
    [carol] = smtp.to("carol@msp.example")
    [bob] = smtp.to("bob@msp.example")
    assert carol.tls and carol.login == SMTP_USER
    assert carol.mail_from == "hub@msp.example"
    message = carol.message
    assert message["To"] == "Carol Nguyen <carol@msp.example>"
    assert message["Subject"].strip() == ("[msphub] Acme Corp: 1 step of Leaver access revocation "
                                  "assigned to you")
    assert message.get_content_type() == "multipart/alternative"
    text = parts(message)
    assert set(text) == {"text/plain", "text/html"}
    link = f"http://hub.test/runs/{run_id}"
    assert "Hello Carol Nguyen" in text["text/plain"]
    assert "Revoke all access" in text["text/plain"] and link in text["text/plain"]
    assert "Confirm with HR" not in text["text/plain"]  # bob's step, not hers
    assert f'href="{link}"' in text["text/html"] and "Revoke all access" in text["text/html"]
    assert "Confirm with HR" in parts(bob.message)["text/plain"]


def test_one_email_per_fact_however_often_delivery_runs(runtime: Runtime,
                                                        smtp: SMTPServer) -> None:
    """Sending twice sends nothing twice: a sent notification is done."""
    launch(runtime)
    deliver_due(runtime.ctx)
    again = deliver_due(runtime.ctx)
    assert again.sent == () and len(smtp.to("carol@msp.example")) == 1


def test_a_refused_recipient_is_a_dead_letter_and_the_others_go(
        runtime: Runtime, smtp: SMTPServer) -> None:
    """A 550 for one address parks that notification with the reason; the other emails
    and the Slack message are delivered."""
    smtp.refuse.add("bob@msp.example")
    launch(runtime)
    report = deliver_due(runtime.ctx)
    [dead] = rows(runtime, status=NoteStatus.DEAD.value)
    assert dead.recipient == "bob" and "refused the recipient (550)" in (dead.last_error or "")
    assert report.dead == (dead.id,) and len(report.sent) == 2
    assert smtp.to("carol@msp.example") and not smtp.to("bob@msp.example")
    listed = [d for d in list_dead(runtime.ctx) if d.kind == "notification"]
    assert [d.id for d in listed] == [dead.id]
    assert "email → bob" in listed[0].summary


def test_an_unreachable_server_is_retried_with_backoff(runtime: Runtime, smtp: SMTPServer,
                                                       clock: Clock) -> None:
    """SMTP down: the email waits 30 s, then 60 s …; it goes once the server answers."""
    launch(runtime)
    real_port = runtime.ctx.settings.smtp_port
    object.__setattr__(runtime.ctx.settings, "smtp_port", 1)  # nobody listens there
    first = deliver_due(runtime.ctx)
    assert len(first.retrying) == 2 and not smtp.received
    assert deliver_due(runtime.ctx).retrying == ()  # not due again yet
    object.__setattr__(runtime.ctx.settings, "smtp_port", real_port)
    clock.advance(seconds=31)
    second = deliver_due(runtime.ctx)
    assert sorted(second.sent) == sorted(first.retrying)
    assert {r.rcpt_tos[0] for r in smtp.received} == {"bob@msp.example", "carol@msp.example"}


def test_the_periodic_job_sends_them(runtime: Runtime, smtp: SMTPServer) -> None:
    """The scheduler sends the `notifications` job (every 15 s); a worker running it sends
    what is due."""
    assert periodic.JOBS["notifications"] == 15.0
    launch(runtime)
    periodic.run(runtime, "notifications")
    assert smtp.to("carol@msp.example") and smtp.to("bob@msp.example")
    assert {r.status for r in rows(runtime)} == {NoteStatus.SENT.value}
