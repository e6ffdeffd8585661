"""Real local servers for the notification tests: SMTP (aiosmtpd, STARTTLS + AUTH) and an
HTTP server standing in for Teams and Slack incoming webhooks, both on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_USER = "hub"
SMTP_PASSWORD = "s3cret-smtp"


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd's controller needs a number up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make the SMTP server's certificate")
    cert, key = tmp / "smtp.pem", tmp / "smtp.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass
class Received:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class SMTPServer:
    """The running server: what it received, and its certificate (the hub's CA file)."""

    port: int
    cert: Path
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # recipients answered 550

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword) else None
        self.server.received.append(Received(
            str(envelope.mail_from), list(envelope.rcpt_tos), message,
            tls=session.ssl is not None, login=login))
        return "250 Message accepted"


def _authenticator(smtp: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
        and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@contextmanager
def smtp_server(tmp: Path) -> Iterator[SMTPServer]:
    """An SMTP server that requires STARTTLS before anything and AUTH before MAIL."""
    cert, key = self_signed(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = SMTPServer(free_port(), cert)
    controller = Controller(_Handler(server), hostname="127.0.0.1", port=server.port,
                            tls_context=context, require_starttls=True, auth_required=True,
                            auth_require_tls=True, authenticator=_authenticator,
                            ready_timeout=30)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class Hooks:
    """The webhook server: bodies by path; ``answer`` sets a path's status (default 200)."""

    base: str
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answer: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.posts.get(path, []))


@contextmanager
def webhook_server() -> Iterator[Hooks]:
    """A local HTTP server answering POSTs as Teams/Slack webhooks do (200, body "ok")."""
    hooks = Hooks("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status = hooks.answer.get(self.path, 200)
            with hooks.lock:
                hooks.posts.setdefault(self.path, []).append(body)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no_service")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
