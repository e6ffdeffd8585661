"""The channels a notification goes out on: SMTP email, Teams and Slack incoming webhooks.

Each sender turns one rendered notification into the channel's own format and raises
``TransientError`` (try again later: a timeout, a 4xx/5xx SMTP reply of the temporary
kind, HTTP 429 or 5xx) or ``PermanentError`` (never: a refused recipient or login, a
webhook that does not exist) — the delivery loop retries the first with backoff and parks
the second as a dead letter.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any, Protocol

import httpx

from connectors.base import PermanentError, TransientError
from hub.core.team import Team
from hub.settings import Settings

# Slack's limits for a header block and a section's text; Teams cards have none this low
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000


@dataclass(frozen=True)
class Message:
    """One notification as a sender needs it (read from its row)."""

    id: int
    recipient: str
    name: str
    address: str | None
    subject: str
    text: str
    html: str | None
    link: str | None


class Sender(Protocol):
    """Sends one message on one channel."""

    def send(self, message: Message) -> None: ...


class EmailSender:
    """SMTP submission: STARTTLS (required unless turned off), AUTH when a user is set, a
    multipart/alternative message with a plain and an HTML part."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def email(self, message: Message) -> EmailMessage:
        """The MIME message (also what tests and previews look at)."""
        sender = self.settings.smtp_from
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = sender
        mail["To"] = formataddr((message.name, message.address or ""))
        mail["Date"] = formatdate(localtime=False)
        domain = parseaddr(sender)[1].rpartition("@")[2] or "msphub.local"
        mail["Message-ID"] = make_msgid(f"n{message.id}", domain=domain)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def _context(self) -> ssl.SSLContext:
        ca = self.settings.smtp_ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def send(self, message: Message) -> None:
        """Submit the message.

        Raises:
            PermanentError: no SMTP host, no address, STARTTLS not offered, login or
                recipient refused (5xx).
            TransientError: the server is unreachable, timed out or answered 4xx.
        """
        s = self.settings
        if not s.smtp_host:
            raise PermanentError("no SMTP server configured (MSPHUB_SMTP_HOST)")
        if not message.address:
            raise PermanentError(f"{message.recipient} has no email address")
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout) as smtp:
                smtp.ehlo()
                if s.smtp_starttls:
                    if not smtp.has_extn("starttls"):
                        raise PermanentError(f"{s.smtp_host} does not offer STARTTLS")
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if s.smtp_user:
                    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                    smtp.login(s.smtp_user, password)
                smtp.send_message(self.email(message))
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"SMTP login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentError(f"SMTP refused the recipient ({codes[0]})") from exc
            raise TransientError(f"SMTP deferred the recipient ({codes[0]})") from exc
        except smtplib.SMTPResponseException as exc:
            error = PermanentError if exc.smtp_code >= 500 else TransientError
            raise error(f"SMTP error {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS
            raise TransientError(f"SMTP unreachable: {type(exc).__name__}") from exc


def teams_card(message: Message) -> dict[str, Any]:
    """A Teams incoming-webhook message carrying one Adaptive Card (version 1.4)."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": message.subject, "weight": "Bolder",
             "size": "Medium", "wrap": True},
            {"type": "TextBlock", "text": message.text.strip(), "wrap": True},
        ],
    }
    if message.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in msphub",
                            "url": message.link}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


def slack_blocks(message: Message) -> dict[str, Any]:
    """A Slack incoming-webhook message: Block Kit header, section and link button, with
    ``text`` as the notification fallback."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": message.subject[:SLACK_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": message.text.strip()[:SLACK_TEXT_MAX]}},
    ]
    if message.link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in msphub"},
             "url": message.link}]})
    return {"text": message.subject, "blocks": blocks}


class WebhookSender:
    """POSTs a JSON message to the recipient's Teams or Slack incoming webhook."""

    def __init__(self, channel: str, team: Team, http: httpx.Client) -> None:
        self.channel = channel
        self.team = team
        self.http = http

    def send(self, message: Message) -> None:
        """Post the message to the webhook team.yaml names for the recipient.

        Raises:
            PermanentError: no webhook configured, or it answered 4xx (gone, bad payload).
            TransientError: unreachable, timed out, 429 or 5xx.
        """
        member = self.team.member(message.recipient)
        url = getattr(member.notify, self.channel) if member is not None else None
        if url is None:
            raise PermanentError(f"{message.recipient} has no {self.channel} webhook")
        body = teams_card(message) if self.channel == "teams" else slack_blocks(message)
        try:
            response = self.http.post(url.get_secret_value(), json=body)
        except httpx.HTTPError as exc:  # never the URL in the message: it is the secret
            raise TransientError(f"{self.channel} webhook unreachable: "
                                 f"{type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{self.channel} webhook answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"{self.channel} webhook answered {response.status_code}: "
                                 f"{response.text[:100]}")


def senders(settings: Settings, team: Team, http: httpx.Client) -> dict[str, Sender]:
    """A sender per channel name."""
    return {"email": EmailSender(settings), "teams": WebhookSender("teams", team, http),
            "slack": WebhookSender("slack", team, http)}
