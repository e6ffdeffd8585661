"""A local HaloPSA simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                  # http://127.0.0.1:<free port>
    halo = server.sandbox
    client = halo.store.create_client("Acme Ltd")
    halo.add_webhook("http://127.0.0.1:8000/webhooks/halo", password="<webhook secret>")
    ticket = halo.store.create_ticket("Leaver: Jo Bloggs", client_id=client["id"],
                                      ticket_type="Leaver", user_name="Jo Bloggs")
    connector = build_connector("halopsa", "halo", server.connector_config())
```

It serves the client-credentials grant at ``/auth/token`` (``?tenant=`` checked when the
sandbox has a tenant) and the ``/api`` subset the connector uses in vendor shapes: paged
listings with Halo's parameter names (``pageinate``, ``page_size`` capped at 100,
``page_no`` from 1) and the ``record_count`` + plural-key envelope; like Halo it ignores
parameters it does not know, so a misspelt ``pageinate`` returns every record. POST
bodies must be arrays. Listings leave out ``customfields`` (``GET /Tickets/{id}`` has
them). Changes POST webhooks (``{"event", "ticket", "action"}``) with Basic auth or a
secret header to the URLs added with :meth:`HaloPSASandbox.add_webhook`. The kit's
switches (forced 429/5xx with ``Retry-After``, failures after a write was applied,
delay, dropped/duplicated webhooks) apply to ``/api`` requests; the token endpoint is
outside the fault gate. Run it standalone with ``python -m connectors.halopsa.sandbox``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.base import WebhookRequest
from connectors.halopsa.sandbox_store import (
    AGENT_TECH,
    Record,
    SandboxError,
    SandboxStore,
    halo_time,
    parse_halo_time,
)
from connectors.sandbox import (
    Failure,
    FaultGate,
    FaultSwitches,
    HostedSandbox,
    WebhookDispatcher,
    control_routes,
)
from hub.core.events import SubjectRef

__all__ = ["HaloPSASandbox", "SandboxServer"]

MAX_PAGE = 100
TOKEN_LIFE = 3600
WEBHOOK_TICKET_FIELDS = ("id", "summary", "tickettype_id", "status_id", "client_id",
                         "client_name", "team", "last_update")


def forced_error(failure: Failure) -> Response:
    """A forced failure: Halo answers 429 with plain text, errors as .NET exception JSON."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    if failure.status == 429:
        return PlainTextResponse("Too Many Requests", 429, headers)
    return JSONResponse({"ClassName": "System.Exception", "Message": "forced by the sandbox"},
                        failure.status, headers)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"ClassName": "System.Exception", "Message": message}, status)


class HaloPSASandbox:
    """Simulated tenant: records, tokens, switches, webhook delivery and the ASGI ``app``."""

    def __init__(self, *, client_id: str = "sandbox-client-id",
                 client_secret: str = "sandbox-client-secret-0123456789",
                 tenant: str | None = "sandbox", webhook_workers: int = 2,
                 loopback_only: bool = True, clock: Callable[[], datetime] | None = None,
                 webhook_timeout: float = 30.0) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.webhooks: list[tuple[str, dict[str, str]]] = []
        self.store = SandboxStore(clock=clock, on_change=self._on_change)
        self.faults = FaultSwitches()
        self.dispatcher = WebhookDispatcher(workers=webhook_workers, loopback_only=loopback_only,
                                            timeout=webhook_timeout, faults=self.faults,
                                            name="halo-webhooks")
        self._lock = threading.Lock()

    # -- webhooks -------------------------------------------------------------------------

    def add_webhook(self, url: str, *, username: str = "msphub", password: str | None = None,
                    header: str | None = None, secret: str | None = None) -> None:
        """A webhook (Configuration → Integrations → Webhooks) with Basic authentication
        (``username``/``password``), or a secret ``header`` carrying ``secret``."""
        headers = self.webhook_headers(username=username, password=password, header=header,
                                       secret=secret)
        with self._lock:
            self.webhooks.append((url, headers))

    @staticmethod
    def webhook_headers(*, username: str = "msphub", password: str | None = None,
                        header: str | None = None, secret: str | None = None
                        ) -> dict[str, str]:
        """The headers a webhook configured so sends (Basic auth and/or a secret header)."""
        headers = {"content-type": "application/json"}
        if password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            headers["authorization"] = f"Basic {token}"
        if header is not None and secret is not None:
            headers[header.lower()] = secret
        return headers

    @staticmethod
    def webhook_body(event: str, ticket: Record, action: Record | None = None) -> bytes:
        """What the sandbox posts: the event name, the ticket and the action objects."""
        body: Record = {"event": event,
                        "ticket": {k: ticket.get(k) for k in WEBHOOK_TICKET_FIELDS}}
        if action is not None:
            body["action"] = action
        return json.dumps(body).encode()

    def _on_change(self, event: str, ticket: Record, action: Record | None) -> None:
        with self._lock:
            hooks = list(self.webhooks)
        for url, headers in hooks:
            self.dispatcher.send(url, self.webhook_body(event, ticket, action), dict(headers))

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued webhooks were attempted; False on timeout."""
        return self.dispatcher.wait_idle(timeout)

    # -- switches -------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

    def fail_next_writes_after_apply(self, count: int, *, status: int = 500) -> None:
        """Apply the next ``count`` writes, then answer ``status`` instead of their result."""
        self.faults.fail_next_writes_after_apply(count, status=status)

    def revoke_tokens(self) -> None:
        """Expire every issued token (the next API call answers 401)."""
        with self._lock:
            self.tokens.clear()

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """How many API requests matched ``method`` and/or ``path`` (exact)."""
        return self.faults.request_count(method, path)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and the control API."""
        return {**self.faults.stats(), **self.dispatcher.counts,
                "token_requests": self.token_requests}

    # -- the app --------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if self.tenant is not None and request.query_params.get("tenant") != self.tenant:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "unknown tenant"}, 400)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return JSONResponse({"token_type": "Bearer", "access_token": token,
                             "expires_in": TOKEN_LIFE, "scope": form.get("scope", "all")})

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        with self._lock:
            return header.startswith("Bearer ") and header[7:] in self.tokens

    @staticmethod
    def _listing(request: Request, key: str, rows: list[Record]) -> Response:
        """Halo's envelope; ``pageinate=true`` pages, anything else returns everything."""
        q = request.query_params
        order = q.get("order") or "id"
        descending = q.get("orderdesc", "true" if "order" not in q else "false") == "true"
        rows = sorted(rows, key=lambda r: (r.get(order) is None, r.get(order)),
                      reverse=descending)
        if q.get("pageinate") != "true":
            return JSONResponse({"record_count": len(rows), key: rows})
        try:
            size, page = int(q.get("page_size", "50")), int(q.get("page_no", "1"))
        except ValueError:
            return _error(400, "page_size and page_no must be integers")
        size, page = max(1, min(size, MAX_PAGE)), max(1, page)
        chunk = rows[(page - 1) * size:page * size]
        return JSONResponse({"page_no": page, "page_size": size, "record_count": len(rows),
                             key: chunk})

    async def _array(self, request: Request) -> list[Record]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise SandboxError(400, "body is not JSON") from None
        if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
            raise SandboxError(400, "the body must be an array of objects")
        return body

    def _api(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, "Unauthorized")
            try:
                result = handler(request)
                if hasattr(result, "__await__"):
                    result = await result
                return result  # type: ignore[no-any-return]
            except SandboxError as exc:
                return _error(exc.status, exc.message)

        return endpoint

    def _tickets(self, request: Request) -> Response:
        since_text = request.query_params.get("lastupdatefromdate")
        try:
            since = parse_halo_time(since_text) if since_text else None
        except ValueError:
            return _error(400, "lastupdatefromdate is not a date")
        return self._listing(request, "tickets", self.store.ticket_list(since))

    async def _save_tickets(self, request: Request) -> Response:
        saved = [self.store.update_ticket(int(r["id"]), r) for r in await self._array(request)
                 if isinstance(r.get("id"), int)]
        return JSONResponse(saved[0] if len(saved) == 1 else saved)

    def _ticket(self, request: Request) -> Response:
        return JSONResponse(self.store.ticket(int(request.path_params["ticket_id"])))

    def _actions(self, request: Request) -> Response:
        q = request.query_params
        try:
            tid, count = int(q.get("ticket_id", "0")), int(q.get("count", "0"))
        except ValueError:
            return _error(400, "ticket_id and count must be integers")
        rows = list(reversed(self.store.ticket_actions(tid)))  # newest first
        return JSONResponse({"record_count": len(rows), "actions": rows[:count or None]})

    async def _add_actions(self, request: Request) -> Response:
        saved = [self.store.add_action(r, agent_id=self.store.api_agent_id)
                 for r in await self._array(request)]
        return JSONResponse(saved[0] if len(saved) == 1 else saved)

    def _attachments(self, request: Request) -> Response:
        try:
            tid = int(request.query_params.get("ticket_id", "0"))
        except ValueError:
            return _error(400, "ticket_id must be an integer")
        rows = self.store.ticket_attachments(tid)
        return JSONResponse({"record_count": len(rows), "attachments": rows})

    async def _add_attachments(self, request: Request) -> Response:
        saved = [self.store.add_attachment(r, agent_id=self.store.api_agent_id)
                 for r in await self._array(request)]
        return JSONResponse(saved[0] if len(saved) == 1 else saved)

    def _statuses(self, request: Request) -> Response:
        rows = [{"id": k, "name": v, "type": 0} for k, v in self.store.statuses.items()]
        return JSONResponse(rows)  # Halo answers lookups as bare arrays

    def _ticket_types(self, request: Request) -> Response:
        rows = [{"id": k, "name": v} for k, v in self.store.ticket_types.items()]
        return JSONResponse(rows)

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app: token endpoint, the ``/api`` subset, ``/_sandbox`` controls."""
        routes = [
            Route("/auth/token", self._token, methods=["POST"]),
            Route("/api/Tickets", self._api(self._tickets), methods=["GET"]),
            Route("/api/Tickets", self._api(self._save_tickets), methods=["POST"]),
            Route("/api/Tickets/{ticket_id:int}", self._api(self._ticket), methods=["GET"]),
            Route("/api/Actions", self._api(self._actions), methods=["GET"]),
            Route("/api/Actions", self._api(self._add_actions), methods=["POST"]),
            Route("/api/Attachment", self._api(self._attachments), methods=["GET"]),
            Route("/api/Attachment", self._api(self._add_attachments), methods=["POST"]),
            Route("/api/ClientContract", self._api(
                lambda r: self._listing(r, "contracts", self.store.contract_list()))),
            Route("/api/Client", self._api(
                lambda r: self._listing(r, "clients", self.store.client_list()))),
            Route("/api/Status", self._api(self._statuses)),
            Route("/api/TicketType", self._api(self._ticket_types)),
            *control_routes(self.faults, stats=self.stats),
        ]
        inner = Starlette(routes=routes)
        gated = FaultGate(inner, self.faults, error=forced_error)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # the token endpoint is outside the gate: the tenant's limit counts API calls
            target = inner if scope.get("path", "").startswith("/auth/") else gated
            await target(scope, receive, send)

        return app


class SandboxServer(HostedSandbox):
    """Runs a ``HaloPSASandbox`` on 127.0.0.1 in a background thread (``Sandbox`` protocol)."""

    sandbox: HaloPSASandbox

    def __init__(self, sandbox: HaloPSASandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or HaloPSASandbox(**kw), port=port)
        self._seed_client: int | None = None

    def connector_config(self, *, valid_credentials: bool = True,
                         **overrides: Any) -> dict[str, Any]:
        """Raw ``halopsa`` config for this sandbox (small pages exercise paging)."""
        halo = self.sandbox
        config: dict[str, Any] = {
            "url": self.url,
            "tenant": halo.tenant,
            "client_id": halo.client_id,
            "client_secret": halo.client_secret if valid_credentials else "WRONG-SECRET",
            "webhook_secret": "sandbox-webhook-secret-0123456789",
            "page_size": 10,
            "requests_per_minute": 100_000,
        }
        if halo.tenant is None:
            config.pop("tenant")
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Create ``count`` tickets (``tickets``) or contracts (``contracts``)."""
        if stream not in ("tickets", "contracts"):
            raise ValueError(f"unknown stream {stream!r}")
        store = self.sandbox.store
        client = self._client()
        for i in range(count):
            if stream == "tickets":
                store.create_ticket(f"Seed ticket {i}", client_id=client, notify=False)
            else:
                store.create_contract(client, ref=f"Seed contract {i}")

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)

    # -- WebhookSandbox / TicketSandbox (the contract suite) --------------------------------

    signs_webhooks = False  # Basic credentials only; the connector re-reads the ticket
    completed_status = "Closed"

    def _client(self) -> int:
        if self._seed_client is None:
            self._seed_client = self.sandbox.store.create_client("Seed client")["id"]
        return self._seed_client

    def webhook_delivery(self, event: str = "created", *, thin: bool = False) -> WebhookRequest:
        """The webhook for a ticket a technician logged now (``created``), or for an action
        of theirs moving an older ticket (``updated``), with Basic credentials; Halo's
        bodies are always treated as thin."""
        store = self.sandbox.store
        ticket = store.create_ticket("Contract ticket", client_id=self._client(), notify=False)
        name, action = "New Ticket Logged", None
        if event == "updated":  # a technician's action on a ticket logged yesterday
            with store.lock:
                store.tickets[ticket["id"]]["datecreated"] = halo_time(
                    parse_halo_time(ticket["datecreated"]) - timedelta(days=1))
            action = store.add_action({"ticket_id": ticket["id"], "outcome": "Update",
                                       "note": "Working on it", "new_status": 2},
                                      agent_id=AGENT_TECH)
            ticket, name = store.ticket(ticket["id"]), "Action Added"
        elif event != "created":
            raise ValueError(f"unknown event {event!r}")
        return self.webhook_request(self.sandbox.webhook_body(name, ticket, action))

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` with the Basic credentials of our webhook (``msphub``:secret)."""
        password = secret if secret is not None else self.connector_config()["webhook_secret"]
        return WebhookRequest(headers=self.sandbox.webhook_headers(password=password),
                              body=body)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued deliveries were attempted."""
        return self.sandbox.wait_for_webhooks(timeout)

    def send_webhooks_to(self, url: str) -> None:
        """The README's setup: Basic ``msphub`` / ``webhook_secret``."""
        self.sandbox.add_webhook(url, password=self.connector_config()["webhook_secret"])

    def touch_ticket(self, ticket: SubjectRef) -> None:
        """A technician edits the summary ("Ticket Updated")."""
        self.sandbox.store.update_ticket(int(ticket.id),
                                         {"summary": f"Touched {uuid.uuid4().hex[:6]}"})

    def a_ticket(self) -> SubjectRef:
        """A new ticket (status New) logged by a technician."""
        ticket = self.sandbox.store.create_ticket("Contract write-back",
                                                  client_id=self._client(), notify=False)
        return SubjectRef(type="ticket", id=str(ticket["id"]))

    def ticket_status(self, ticket: SubjectRef) -> str:
        """The ticket's status name."""
        return str(self.sandbox.store.ticket(int(ticket.id))["status_name"])

    def attachment_ids(self, ticket: SubjectRef) -> list[str]:
        """Ids of the ticket's attachments."""
        return [str(a["id"]) for a in self.sandbox.store.ticket_attachments(int(ticket.id))]

    def status_writes(self, ticket: SubjectRef) -> int:
        """Actions on the ticket carrying ``new_status``, plus ``POST /Tickets`` saves."""
        actions = self.sandbox.store.ticket_actions(int(ticket.id))
        moves = sum(1 for a in actions if a.get("new_status"))
        return moves + self.sandbox.request_count("POST", "/api/Tickets")

    def lose_next_note_answer(self) -> None:
        """The next write (a note is one ``POST /Actions``) is stored, then answered 500."""
        self.sandbox.fail_next_writes_after_apply(1)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="HaloPSA sandbox on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8125)
    parser.add_argument("--webhook", action="append", default=[],
                        help="deliver webhooks to this URL (repeatable; Basic msphub:"
                        "<connector_config webhook_secret>)")
    args = parser.parse_args(argv)
    server = SandboxServer(port=args.port)
    server.start()
    config = server.connector_config()
    for url in args.webhook:
        server.sandbox.add_webhook(url, password=config["webhook_secret"])
    print(json.dumps(config, indent=2))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
