"""A local Autotask PSA simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                  # http://127.0.0.1:<free port>
    at = server.sandbox
    company = at.store.create_company("Acme Ltd")
    ticket = at.store.create_ticket("Leaver: Jo Bloggs", company_id=company["id"])
    connector = build_connector("autotask", "at", server.connector_config())
```

What it mimics: the zone lookup (``/atservicesrest/v1.0/zoneInformation?user=``, no
credentials; 500 for an unknown user) and a zone-prefixed API (``/z1/atservicesrest/V1.0``;
:meth:`AutotaskSandbox.move_zone` moves the tenant, the old zone then answers 401); the
``ApiIntegrationCode``/``UserName``/``Secret`` headers; ``POST {Entity}/query`` with the
JSON filter grammar, ``MaxRecords`` ≤ 500 and ``pageDetails.nextPageUrl`` that must be
POSTed again with the same body; ``{"item": …}`` reads (``{"item": null}`` when missing),
``{"itemId": n}`` writes and ``{"errors": [...]}`` failures; entity field metadata with
picklists; ticket notes and attachments (6 MB per file, 10,000,000 bytes per 5 minutes);
``TicketWebhooks`` with fields and excluded resources, delivering Create/Update payloads
signed ``X-Hook-Signature: sha1=…`` over the .NET-escaped serialisation while the body
on the wire carries the raw UTF-8 characters; ``ThresholdInformation`` (requests in the
rolling hour, plus :attr:`AutotaskSandbox.external_usage` for the tenant's other
integrations; refused at the threshold); and the 3-thread limit per integration code and
endpoint (``Itgenatr005``, answered 500 as Autotask may). The kit's fault switches apply
to API requests; the zone lookup is outside the gate.
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import signal
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.autotask.config import DEFAULT_DISPLAY_ALWAYS, DEFAULT_SUBSCRIBED
from connectors.autotask.sandbox_api import RecordRoutes
from connectors.autotask.sandbox_store import (
    PICKLISTS,
    FilterError,
    Record,
    SandboxStore,
    stamp,
)
from connectors.autotask.sandbox_webhooks import (
    WebhookSender,
    dotnet_body,
    signed_headers,
    webhook_route,
)
from connectors.autotask.sandbox_webhooks import errors as _errors
from connectors.base import WebhookRequest
from connectors.sandbox import Failure, FaultGate, FaultSwitches, HostedSandbox, WebhookDispatcher
from connectors.sandbox import control_routes as kit_control_routes
from hub.core.events import SubjectRef

__all__ = ["AutotaskSandbox", "SandboxServer", "dotnet_body"]

THREAD_LIMIT = 3
_API = re.compile(r"^/(?P<zone>[a-z0-9]+)/atservicesrest/v1\.0/(?P<rest>.*)$")


def forced_error(failure: Failure) -> Response:
    """A forced failure in Autotask's error shape."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    text = "Too many requests" if failure.status == 429 else "forced by the sandbox"
    return _errors(failure.status, text, headers=headers)


class AutotaskSandbox:
    """One simulated Autotask database: records, credentials, zone, limits, webhooks."""

    def __init__(self, *, username: str = "api@sandbox.example",
                 secret: str = "sandbox-secret-0123456789",
                 integration_code: str = "SANDBOXINTEGRATIONCODE01",
                 threshold: int = 10_000, clock: Callable[[], datetime] | None = None,
                 loopback_only: bool = True, webhook_timeout: float = 30.0) -> None:
        self.username, self.secret, self.integration_code = username, secret, integration_code
        self.threshold = threshold
        self.external_usage = 0  # requests of the tenant's other integrations this hour
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.zone = "z1"
        self.store = SandboxStore(clock=clock, on_ticket=self._on_ticket, api_user=username)
        self.faults = FaultSwitches()
        self.dispatcher = WebhookDispatcher(workers=2, loopback_only=loopback_only,
                                            timeout=webhook_timeout, faults=self.faults,
                                            name="autotask-webhooks")
        self.webhooks = WebhookSender(self.store, self.dispatcher)
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()
        self._in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self.thread_refusals = 0
        self.records = RecordRoutes(self.store, self.zone_url)

    # -- switches and observations ---------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

    def fail_next_notes_after_apply(self, count: int = 1) -> None:
        """Store the next ``count`` ticket notes, then answer 500 instead of the itemId
        (the kit's write switch would hit the POSTed queries first)."""
        self.records.fail_notes_after_apply(count)

    def move_zone(self) -> str:
        """Move the tenant to another zone; the old one answers 401 from now on."""
        with self._lock:
            self.zone = f"z{int(self.zone[1:]) + 1}"
            return self.zone

    def zone_url(self) -> str:
        return f"{self.base_url}/{self.zone}/atservicesrest/"

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """API requests seen (``path`` exact, e.g. ``/z1/atservicesrest/V1.0/Tickets/query``)."""
        return self.faults.request_count(method, path)

    def api_path(self, suffix: str) -> str:
        """The current zone's path of an API resource (``Tickets/5/Notes``)."""
        return f"/{self.zone}/atservicesrest/V1.0/{suffix}"

    def used_this_hour(self) -> int:
        """Requests counted against the threshold (ours and the other integrations')."""
        with self._lock:
            cutoff = time.monotonic() - 3600
            while self._stamps and self._stamps[0] < cutoff:
                self._stamps.popleft()
            return len(self._stamps) + self.external_usage

    def stats(self) -> dict[str, Any]:
        return {**self.faults.stats(), "used_this_hour": self.used_this_hour(),
                "peak_in_flight": dict(self.peak_in_flight),
                "thread_refusals": self.thread_refusals}

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        return self.dispatcher.wait_idle(timeout)

    def _on_ticket(self, action: str, ticket: Record, changed: set[str], actor: int) -> None:
        self.webhooks.on_ticket(action, ticket, changed, actor)

    # -- webhooks -------------------------------------------------------------------------

    # -- HTTP -----------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        h = request.headers
        return (hmac.compare_digest(h.get("apiintegrationcode", ""), self.integration_code)
                and h.get("username", "").casefold() == self.username.casefold()
                and hmac.compare_digest(h.get("secret", ""), self.secret))

    async def _zone_lookup(self, request: Request) -> Response:
        user = request.query_params.get("user", "")
        if user.casefold() != self.username.casefold():
            return _errors(500, "Object reference not set to an instance of an object.")
        return JSONResponse({"zoneName": "Sandbox Zone", "url": self.zone_url(),
                             "webUrl": f"{self.base_url}/{self.zone}/web/", "ci": 1})

    async def _api(self, request: Request) -> Response:
        match = _API.match(request.url.path.lower())
        if match is None:
            return _errors(404, "not found")
        if match["zone"] != self.zone or not self._authorized(request):
            return _errors(401, "Unauthorized")
        with self._lock:
            self._stamps.append(time.monotonic())
        if self.used_this_hour() > self.threshold:
            return _errors(429, "Request threshold exceeded for this database")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _errors(400, "body is not valid JSON")
        try:
            return self._route(request, match["rest"].strip("/").split("/"), body)
        except FilterError as exc:
            return _errors(400, str(exc))

    def _route(self, request: Request, parts: list[str], body: Any) -> Response:
        method, entity = request.method, parts[0]
        if entity == "thresholdinformation" and method == "GET":
            return JSONResponse({"externalRequestThreshold": self.threshold,
                                 "requestThresholdTimeframe": 60,
                                 "currentTimeframeRequestCount": self.used_this_hour()})
        if len(parts) >= 2 and parts[1] == "query":
            return self.records.query(request, entity, parts, body)
        if entity == "ticketwebhooks":
            return webhook_route(self.store, method, parts, body)
        if len(parts) == 3 and parts[1:] == ["entityinformation", "fields"] and method == "GET":
            return self.records.fields(entity)
        if entity == "tickets" and method == "PATCH" and len(parts) == 1:
            return self.records.patch_ticket(body)
        if entity == "tickets" and len(parts) == 3 and method == "POST" and parts[1].isdigit():
            return self.records.ticket_child(int(parts[1]), parts[2], body)
        if len(parts) == 2 and parts[1].isdigit() and method == "GET":
            if entity not in self.store.tables:
                return _errors(404, f"unknown entity {entity}")
            return JSONResponse({"item": self.store.get(entity, int(parts[1]))})
        return _errors(405, f"{method} {'/'.join(parts)} is not supported by the sandbox")

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app: zone lookup (outside the gate), the thread limit, the kit's gate
        in front of the API, and ``/_sandbox`` controls."""
        controls = Starlette(routes=kit_control_routes(self.faults, stats=self.stats))
        api = FaultGate(self._api_app, self.faults, error=forced_error)
        lookup = "/atservicesrest/v1.0/zoneinformation"

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] != "http":
                return
            if path.startswith("/_sandbox/"):
                await controls(scope, receive, send)
            elif path.lower() == lookup:
                response = await self._zone_lookup(Request(scope, receive))
                await response(scope, receive, send)
            else:
                await self._thread_limited(api, scope, receive, send)

        return app

    async def _api_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._api(Request(scope, receive))
        await response(scope, receive, send)

    async def _thread_limited(self, app: ASGIApp, scope: Scope, receive: Receive,
                              send: Send) -> None:
        """At most 3 requests in flight per integration code and endpoint."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        match = _API.match(scope.get("path", "").lower())
        endpoint = match["rest"].split("/")[0] if match else ""
        key = f"{headers.get('apiintegrationcode', '')}:{endpoint}"
        with self._lock:
            self._in_flight[key] += 1
            now = self._in_flight[key]
            self.peak_in_flight[endpoint] = max(self.peak_in_flight[endpoint], now)
        try:
            if now > THREAD_LIMIT:
                with self._lock:
                    self.thread_refusals += 1
                response = _errors(500, "Itgenatr005: thread threshold of 3 concurrent "
                                        f"requests exceeded for endpoint {endpoint}")
                await response(scope, receive, send)
                return
            await app(scope, receive, send)
        finally:
            with self._lock:
                self._in_flight[key] -= 1


class SandboxServer(HostedSandbox):
    """Runs an ``AutotaskSandbox`` on 127.0.0.1 in a background thread (``Sandbox``)."""

    sandbox: AutotaskSandbox

    def __init__(self, sandbox: AutotaskSandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or AutotaskSandbox(**kw), port=port)
        self._seed_company: int | None = None
        self._guid = str(uuid.uuid4())

    def connector_config(self, *, valid_credentials: bool = True,
                         **overrides: Any) -> dict[str, Any]:
        """Raw ``autotask`` config for this sandbox (small pages exercise paging)."""
        at = self.sandbox
        config: dict[str, Any] = {
            "username": at.username,
            "secret": at.secret if valid_credentials else "wrong-secret-000000",
            "integration_code": at.integration_code,
            "zone_lookup_url": self.url,
            "allow_any_host": True,
            "webhook_secret": "sandbox-webhook-secret-0123456789",
            "page_size": 10,
            "requests_per_minute": 100_000,
            "requests_per_hour": 100_000,
            "completed_status": "Complete",
        }
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Create ``count`` tickets (``tickets``) or contracts (the contract streams)."""
        if stream not in ("tickets", "contracts", "contract_states"):
            raise ValueError(f"unknown stream {stream!r}")
        store = self.sandbox.store
        company = self._company()
        for i in range(count):
            if stream == "tickets":
                store.create_ticket(f"Seed ticket {i}", company_id=company, notify=False)
            else:
                store.create_contract(company, f"Seed contract {i}")

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)

    # -- WebhookSandbox / TicketSandbox (the contract suite) --------------------------------

    signs_webhooks = True  # X-Hook-Signature: HMAC-SHA1 over the .NET serialisation
    completed_status = "Complete"

    def _company(self) -> int:
        if self._seed_company is None:
            self._seed_company = int(self.sandbox.store.create_company("Seed Company")["id"])
        return self._seed_company

    def webhook_delivery(self, event: str = "created", *, thin: bool = False) -> WebhookRequest:
        """A signed Create (``created``) or Update (``updated``: status to In Progress)
        delivery for a ticket a technician made now; Autotask's payloads are always thin."""
        store, sender = self.sandbox.store, self.sandbox.webhooks
        ticket = store.create_ticket("Contract ticket", company_id=self._company(),
                                     notify=False)
        action = "Create"
        if event == "updated":  # a change to a ticket entered yesterday
            with store.lock:
                row = store.tables["tickets"][ticket["id"]]
                row["createDate"] = stamp(store.clock() - timedelta(days=1))
            ticket = store.update_ticket(ticket["id"], status=8, notify=False)
            action = "Update"
        elif event != "created":
            raise ValueError(f"unknown event {event!r}")
        hook = {"webhookGUID": self._guid,
                "secretKey": self.connector_config()["webhook_secret"]}
        shown = (*DEFAULT_SUBSCRIBED, *DEFAULT_DISPLAY_ALWAYS)  # what we register
        fields = {name: ticket.get(name) for name in shown}
        wire, headers = sender.delivery(hook, action, int(ticket["id"]), fields,
                                        int(store.technician["id"]))
        return WebhookRequest(headers=headers, body=wire)

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` signed as Autotask signs it (HMAC-SHA1 over the body as sent)."""
        key = secret if secret is not None else self.connector_config()["webhook_secret"]
        return WebhookRequest(headers=signed_headers(body, key), body=body)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued deliveries were attempted."""
        return self.sandbox.wait_for_webhooks(timeout)

    def touch_ticket(self, ticket: SubjectRef) -> None:
        """The technician edits the title (a subscribed field: an Update delivery)."""
        self.sandbox.store.update_ticket(int(ticket.id), title=f"Touched {uuid.uuid4().hex[:6]}")

    def a_ticket(self) -> SubjectRef:
        """A new ticket (status New) entered by the technician."""
        ticket = self.sandbox.store.create_ticket("Contract write-back",
                                                  company_id=self._company(), notify=False)
        return SubjectRef(type="ticket", id=str(ticket["id"]))

    def ticket_status(self, ticket: SubjectRef) -> str:
        """The label of the ticket's status picklist value."""
        record = self.sandbox.store.get("tickets", int(ticket.id)) or {}
        return PICKLISTS["tickets"]["status"].get(int(record.get("status") or 0), "")

    def attachment_ids(self, ticket: SubjectRef) -> list[str]:
        """Ids of the ticket's attachments."""
        return [str(a["id"]) for a in self.sandbox.store.attachments(int(ticket.id))]

    def status_writes(self, ticket: SubjectRef) -> int:
        """PATCHes of ``Tickets`` (the writer's only ticket update; one ticket per test)."""
        return self.sandbox.request_count("PATCH", self.sandbox.api_path("Tickets"))

    def lose_next_note_answer(self) -> None:
        """The next ticket note is stored, then answered 500 (queries are POSTs too, so
        the kit's write switch would hit a query first)."""
        self.sandbox.fail_next_notes_after_apply(1)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Autotask PSA sandbox on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8125)
    args = parser.parse_args(argv)
    server = SandboxServer(port=args.port)
    server.start()
    print(json.dumps(server.connector_config(), indent=2))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
