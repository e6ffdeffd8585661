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
import base64
import binascii
import hashlib
import hmac
import json
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.autotask.sandbox_store import (
    PICKLISTS,
    WEBHOOK_FIELDS,
    FilterError,
    Record,
    SandboxStore,
)
from connectors.sandbox import Failure, FaultGate, FaultSwitches, HostedSandbox, WebhookDispatcher
from connectors.sandbox import control_routes as kit_control_routes

__all__ = ["AutotaskSandbox", "SandboxServer", "dotnet_body"]

MAX_FILE = 6_000_000
WINDOW_BYTES, WINDOW_SECONDS = 10_000_000, 300.0
THREAD_LIMIT = 3
_ESCAPED = {"&": "\\u0026", "<": "\\u003C", ">": "\\u003E", "'": "\\u0027", "+": "\\u002B",
            "`": "\\u0060"}
_LOWER_HEX = re.compile(r"\\u([0-9a-f]{4})")
_API = re.compile(r"^/(?P<zone>[a-z0-9]+)/atservicesrest/v1\.0/(?P<rest>.*)$")


def dotnet_body(payload: Any) -> bytes:
    """The bytes Autotask signs: JSON with non-ASCII and ``&<>'+` `` as ``\\uXXXX``
    (upper-case hex) and ``\\"`` as ``\\u0022`` (an independent re-implementation, so
    tests of the connector's verifier are not circular)."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    text = _LOWER_HEX.sub(lambda m: "\\u" + m.group(1).upper(), text)
    text = text.replace('\\"', "\\u0022")
    for char, escape in _ESCAPED.items():
        text = text.replace(char, escape)
    return text.encode("ascii")


def _errors(status: int, *messages: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": list(messages)}, status, headers)


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
        self.sign_raw = False  # True: sign the bytes on the wire instead of .NET's form
        self.store = SandboxStore(clock=clock, on_ticket=self._on_ticket, api_user=username)
        self.faults = FaultSwitches()
        self.dispatcher = WebhookDispatcher(workers=2, loopback_only=loopback_only,
                                            timeout=webhook_timeout, faults=self.faults,
                                            name="autotask-webhooks")
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()
        self._in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self.thread_refusals = 0
        self._uploads: deque[tuple[float, int]] = deque()
        self._sequence = 0
        self._notes_fail_after_apply = 0

    # -- switches and observations ---------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

    def fail_next_notes_after_apply(self, count: int = 1) -> None:
        """Store the next ``count`` ticket notes, then answer 500 instead of the itemId
        (the kit's write switch would hit the POSTed queries first)."""
        with self._lock:
            self._notes_fail_after_apply = count

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

    # -- webhooks -------------------------------------------------------------------------

    def _on_ticket(self, action: str, ticket: Record, changed: set[str], actor: int) -> None:
        for hook in self.store.rows("ticketwebhooks"):
            if not (hook.get("isActive") and hook.get("isReady")):
                continue
            if not hook.get(f"isSubscribedTo{action}Events"):
                continue
            hid = hook["id"]
            excluded = {r.get("resourceID") for r in
                        self.store.webhook_children("ticketwebhookexcludedresources", hid)}
            if actor in excluded:
                continue
            fields = self.store.webhook_children("ticketwebhookfields", hid)
            names = {WEBHOOK_FIELDS.get(int(f.get("fieldID") or 0), ""): f for f in fields}
            subscribed = {n for n, f in names.items() if f.get("isSubscribedField")}
            if action == "Update" and not subscribed & changed:
                continue
            shown = {n: ticket.get(n) for n in names if n}
            self.deliver(hook, action, ticket["id"], shown, actor)

    def deliver(self, hook: Record, action: str, entity_id: int, fields: dict[str, Any],
                actor: int) -> None:
        """POST one signed payload to the hook's URL (drop/duplicate switches applied)."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        payload = {"Action": action, "Guid": hook["webhookGUID"], "EntityType": "Ticket",
                   "Id": entity_id, "Fields": fields, "EventTime": self.store.now(),
                   "SequenceNumber": sequence, "PersonID": actor}
        wire = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        signed = wire if self.sign_raw else dotnet_body(payload)
        digest = hmac.new(str(hook.get("secretKey") or "").encode(), signed, hashlib.sha1)
        signature = "sha1=" + base64.b64encode(digest.digest()).decode()
        self.dispatcher.send(str(hook["webhookUrl"]), wire,
                             {"content-type": "application/json",
                              "x-hook-signature": signature})

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
            return self._query(request, entity, parts, body)
        if entity == "ticketwebhooks":
            return self._webhooks(method, parts, body)
        if len(parts) == 3 and parts[1:] == ["entityinformation", "fields"] and method == "GET":
            return self._fields(entity)
        if entity == "tickets" and method == "PATCH" and len(parts) == 1:
            return self._patch_ticket(body)
        if entity == "tickets" and len(parts) == 3 and method == "POST" and parts[1].isdigit():
            return self._ticket_child(int(parts[1]), parts[2], body)
        if len(parts) == 2 and parts[1].isdigit() and method == "GET":
            if entity not in self.store.tables:
                return _errors(404, f"unknown entity {entity}")
            return JSONResponse({"item": self.store.get(entity, int(parts[1]))})
        return _errors(405, f"{method} {'/'.join(parts)} is not supported by the sandbox")

    def _query(self, request: Request, entity: str, parts: list[str], body: Any) -> Response:
        if entity not in self.store.tables:
            return _errors(404, f"unknown entity {entity}")
        if request.method == "GET":
            search = request.query_params.get("search")
            body = json.loads(search) if search else None
        if not isinstance(body, dict):
            return _errors(400, "query body must be an object")
        after = 0
        if len(parts) == 3 and parts[2] == "next":
            token = parse_qs(request.url.query).get("paging", [""])[0]
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (ValueError, binascii.Error):
                return _errors(400, "invalid paging token")
            if state.get("body") != _digest(body):
                return _errors(400, "the next page must be requested with the same query")
            after = int(state["after"])
        limit = body.get("MaxRecords", body.get("maxRecords", 500))
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            return _errors(400, "MaxRecords must be between 1 and 500")
        items, more = self.store.query(entity, body.get("filter") or body.get("Filter") or [],
                                       after=after, limit=limit)
        include = body.get("IncludeFields") or body.get("includeFields")
        if include:
            wanted = {f.lower() for f in include} | {"id"}
            items = [{k: v for k, v in i.items() if k.lower() in wanted} for i in items]
        elif entity == "ticketattachments":
            items = [{k: v for k, v in i.items() if k != "data"} for i in items]
        next_url = None
        if more:
            token = base64.urlsafe_b64encode(json.dumps(
                {"after": items[-1]["id"], "body": _digest(body)}).encode()).decode()
            next_url = f"{self.zone_url()}V1.0/{_title(entity)}/query/next?paging={token}"
        return JSONResponse({"items": items, "pageDetails": {
            "count": len(items), "requestCount": limit, "prevPageUrl": None,
            "nextPageUrl": next_url}})

    def _fields(self, entity: str) -> Response:
        if entity == "ticketwebhookfields":
            picklists = {"fieldID": WEBHOOK_FIELDS}
        else:
            picklists = PICKLISTS.get(entity, {})
        fields = [{"name": "id", "dataType": "long", "isPickList": False,
                   "isRequired": True, "picklistValues": None}]
        for name, values in picklists.items():
            fields.append({"name": name, "dataType": "integer", "isPickList": True,
                           "isRequired": False, "picklistValues": [
                               {"value": str(v), "label": label, "isActive": True,
                                "isDefaultValue": False, "sortOrder": i}
                               for i, (v, label) in enumerate(values.items())]})
        return JSONResponse({"fields": fields})

    def _patch_ticket(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            return _errors(400, "id is required")
        if self.store.get("tickets", body["id"]) is None:
            return _errors(500, "Ticket not found")
        status = body.get("status")
        if status is not None and status not in PICKLISTS["tickets"]["status"]:
            return _errors(500, f"Value {status} is not a valid status")
        changes = {k: v for k, v in body.items() if k != "id"}
        self.store.update_ticket(body["id"], by=self.store.api_resource["id"], **changes)
        return JSONResponse({"itemId": body["id"]})

    def _ticket_child(self, ticket_id: int, child: str, body: Any) -> Response:
        if self.store.get("tickets", ticket_id) is None:
            return _errors(500, "Ticket not found")
        if not isinstance(body, dict):
            return _errors(400, "body must be an object")
        api = self.store.api_resource["id"]
        if child == "notes":
            if not body.get("title") or not body.get("description"):
                return _errors(500, "title and description are required")
            if body.get("noteType") not in PICKLISTS["ticketnotes"]["noteType"] or \
                    body.get("publish") not in PICKLISTS["ticketnotes"]["publish"]:
                return _errors(500, "noteType or publish is not a valid picklist value")
            if len(str(body["description"])) > 32_000:
                return _errors(500, "description is longer than 32000 characters")
            note = self.store.add_note(ticket_id, body, by=api)
            with self._lock:
                lost = self._notes_fail_after_apply > 0
                self._notes_fail_after_apply -= 1 if lost else 0
            if lost:
                return _errors(500, "forced by the sandbox after storing the note")
            return JSONResponse({"itemId": note["id"]})
        if child == "attachments":
            try:
                size = len(base64.b64decode(str(body.get("data") or ""), validate=True))
            except (ValueError, binascii.Error):
                return _errors(500, "data is not base64")
            if size > MAX_FILE:
                return _errors(500, "The file exceeds the maximum attachment size")
            if not self._upload_fits(size):
                return _errors(500, "Attachment upload limit of 10000000 bytes per 5 "
                                    "minutes exceeded")
            record = self.store.add_attachment(ticket_id, body, size, by=api)
            return JSONResponse({"itemId": record["id"]})
        return _errors(405, f"tickets/{ticket_id}/{child} is not supported")

    def _upload_fits(self, size: int) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._uploads and self._uploads[0][0] < now - WINDOW_SECONDS:
                self._uploads.popleft()
            if sum(n for _, n in self._uploads) + size > WINDOW_BYTES:
                return False
            self._uploads.append((now, size))
            return True

    def _webhooks(self, method: str, parts: list[str], body: Any) -> Response:
        store = self.store
        if method == "POST" and len(parts) == 1 and isinstance(body, dict):
            for key, limit in (("name", 50), ("secretKey", 64), ("webhookUrl", 500),
                               ("deactivationUrl", 500)):
                if not body.get(key) or len(str(body[key])) > limit:
                    return _errors(500, f"{key} is required and at most {limit} characters")
            return JSONResponse({"itemId": store.new_webhook(body)["id"]})
        if method == "PATCH" and len(parts) == 1 and isinstance(body, dict):
            hook_id = body.get("id")
            with store.lock:
                hook = store.tables["ticketwebhooks"].get(hook_id) if isinstance(
                    hook_id, int) else None
                if hook is None:
                    return _errors(500, "Webhook not found")
                hook.update({k: v for k, v in body.items() if k not in ("id", "webhookGUID")})
            return JSONResponse({"itemId": hook_id})
        if len(parts) >= 2 and parts[1].isdigit():
            hook_id = int(parts[1])
            if store.get("ticketwebhooks", hook_id) is None:
                return _errors(500 if method == "DELETE" else 404, "Webhook not found")
            if method == "DELETE" and len(parts) == 2:
                store.delete_webhook(hook_id)
                return JSONResponse({"itemId": hook_id})
            if method == "POST" and len(parts) == 3 and isinstance(body, dict):
                table = {"fields": "ticketwebhookfields",
                         "excludedresources": "ticketwebhookexcludedresources"}.get(parts[2])
                if table is None:
                    return _errors(405, "unsupported webhook child")
                if table == "ticketwebhookfields" and body.get("fieldID") not in WEBHOOK_FIELDS:
                    return _errors(500, "fieldID is not a valid webhook field")
                if table == "ticketwebhookexcludedresources" and \
                        store.get("resources", int(body.get("resourceID") or 0)) is None:
                    return _errors(500, "resourceID is not a resource")
                child = store._insert(table, {**{k: v for k, v in body.items() if k != "id"},
                                              "webhookID": hook_id})
                store.refresh_ready(hook_id)
                return JSONResponse({"itemId": child["id"]})
            if method == "GET" and len(parts) == 2:
                return JSONResponse({"item": store.get("ticketwebhooks", hook_id)})
        return _errors(405, "unsupported webhook request")

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


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _title(entity: str) -> str:
    names = {"tickets": "Tickets", "contracts": "Contracts", "companies": "Companies",
             "contacts": "Contacts", "ticketnotes": "TicketNotes", "resources": "Resources",
             "ticketattachments": "TicketAttachments", "ticketwebhooks": "TicketWebhooks"}
    return names.get(entity, entity)


class SandboxServer(HostedSandbox):
    """Runs an ``AutotaskSandbox`` on 127.0.0.1 in a background thread (``Sandbox``)."""

    sandbox: AutotaskSandbox

    def __init__(self, sandbox: AutotaskSandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or AutotaskSandbox(**kw), port=port)
        self._seed_company: int | None = None

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
        if self._seed_company is None:
            self._seed_company = int(store.create_company("Seed Company")["id"])
        for i in range(count):
            if stream == "tickets":
                store.create_ticket(f"Seed ticket {i}", company_id=self._seed_company,
                                    notify=False)
            else:
                store.create_contract(self._seed_company, f"Seed contract {i}")

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)


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
