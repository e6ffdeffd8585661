"""A local N-central simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                     # http://127.0.0.1:<free port>
    nc = server.sandbox
    acme = nc.store.create_customer("Acme Corp")
    hq = nc.store.create_site(acme["customerId"], "HQ")
    fs01 = nc.store.create_device(hq["siteId"], "ACME-FS01")
    issue = nc.store.raise_issue(fs01["deviceId"], "Backup Manager")
    nc.store.clear_issue(issue["taskId"])
    connector = build_connector("ncentral", "nc", server.connector_config())
```

It serves the strictest reading of N-central's API-Service document: the User-API JWT
only on ``POST /api/auth/authenticate`` (``Authorization: Bearer <JWT>``, no body), the
refresh token only as a ``text/plain`` body of ``POST /api/auth/refresh``, access tokens
that expire, ``pageNumber`` ≥ 1 and ``pageSize`` 1..1000 (no ``-1``), unknown query
parameters refused, ``ListResponse`` (``data, totalItems`` only) for customers and sites,
``QueryResponse`` for devices and active issues, customer and site ids as strings (the
spec types them so; devices and issues carry integers), active issues only for customers and
sites (400 for the service organization, 404 for an unknown id), and a customer's
active issues without its sites' devices. Errors are ``{"status", "message"}``. The
sandbox kit's switches (forced 429/5xx with ``Retry-After``, delay) apply to the API;
``/api/auth/*`` is outside the fault gate. Standalone: ``python -m connectors.ncentral.sandbox``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.ncentral.sandbox_store import SO_ID, Record, SandboxStore
from connectors.sandbox import (
    Failure,
    FaultGate,
    FaultSwitches,
    HostedSandbox,
    WebhookDispatcher,
    control_routes,
)

__all__ = ["NcentralSandbox", "SandboxServer"]

ACCESS_LIFE = 3600
REFRESH_LIFE = 90000
PAGING = frozenset({"pageNumber", "pageSize", "select", "sortBy", "sortOrder"})
EXPIRY = re.compile(r"^(\d{1,6})([smh])$")
UNIT = {"s": 1, "m": 60, "h": 3600}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """N-central's error body: ``{"status": 401, "message": "[ID=…] UNAUTHORIZED: …"}``."""
    return JSONResponse({"status": status, "message": f"[ID={uuid.uuid4().hex[:8]}] {message}"},
                        status, headers)


def forced_error(failure: Failure) -> Response:
    """A forced failure in N-central's error shape."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    text = "TOO MANY REQUESTS" if failure.status == 429 else "FORCED BY THE SANDBOX"
    return _error(failure.status, text, headers)


class BadQuery(Exception):
    """A query the API refuses (400)."""


def _paging(request: Request, *, extra: frozenset[str] = frozenset()) -> tuple[int, int]:
    """``pageNumber`` (≥ 1, default 1) and ``pageSize`` (1..1000, default 50); strict."""
    q = request.query_params
    unknown = sorted(set(q.keys()) - PAGING - extra)
    if unknown:
        raise BadQuery(f"unknown query parameters {unknown}")
    try:
        number, size = int(q.get("pageNumber", "1")), int(q.get("pageSize", "50"))
    except ValueError:
        raise BadQuery("pageNumber and pageSize must be integers") from None
    if number < 1 or not 1 <= size <= 1000:
        raise BadQuery("pageNumber must be >= 1 and pageSize between 1 and 1000")
    return number, size


def _unit_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 10:
        raise BadQuery(f"Invalid orgUnitId format: {raw[:20]}")
    return int(raw)


class NcentralSandbox:
    """Simulated server: records, tokens, switches and the ASGI ``app``."""

    def __init__(self, *, user_api_token: str | None = None,
                 clock: Callable[[], datetime] | None = None,
                 access_life: int = ACCESS_LIFE, refresh_life: int = REFRESH_LIFE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.user_api_token = user_api_token or "eyJhbGciOiJIUzI1NiJ9.sandbox." + \
            secrets.token_urlsafe(24)
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.access_life = access_life
        self.refresh_life = refresh_life
        self.store = SandboxStore(clock=clock)
        self.faults = FaultSwitches()
        self.dispatcher = WebhookDispatcher(workers=1, faults=self.faults,
                                            name="ncentral-none")  # N-central has no push
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, float] = {}
        self.counts = {"authenticate": 0, "refresh": 0}
        self._now = monotonic
        self._lock = threading.Lock()

    # -- switches -------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

    def expire_access_tokens(self) -> None:
        """Every access token expires (refresh tokens stay valid)."""
        with self._lock:
            self.access_tokens.clear()

    def revoke_tokens(self) -> None:
        """Every access and refresh token is refused from now on."""
        with self._lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """How many API requests matched ``method`` and/or ``path`` (exact)."""
        return self.faults.request_count(method, path)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and the control API."""
        with self._lock:
            return {**self.faults.stats(), **self.counts}

    # -- auth -----------------------------------------------------------------------------

    def _issue_tokens(self, request: Request) -> Response:
        life = self.access_life
        override = request.headers.get("x-access-expiry-override")
        if override:
            match = EXPIRY.fullmatch(override.strip())
            if not match:
                return _error(400, "BAD REQUEST: invalid X-ACCESS-EXPIRY-OVERRIDE")
            life = min(life, int(match.group(1)) * UNIT[match.group(2)])
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self.access_tokens[access] = self._now() + life
            self.refresh_tokens[refresh] = self._now() + self.refresh_life
        return JSONResponse({
            "tokens": {"access": {"token": access, "type": "Bearer", "expirySeconds": life},
                       "refresh": {"token": refresh, "type": "Body",
                                   "expirySeconds": self.refresh_life}},
            "refresh": "/api/auth/refresh", "validate": "/api/auth/validate"})

    async def _authenticate(self, request: Request) -> Response:
        with self._lock:
            self.counts["authenticate"] += 1
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "UNAUTHORIZED: UnauthorizedException: Missing authorization "
                          "header bearer.")
        if not secrets.compare_digest(header[7:].encode(), self.user_api_token.encode()):
            return _error(401, "UNAUTHORIZED: UnauthorizedException: Invalid JWT.")
        if await request.body():
            return _error(400, "BAD REQUEST: authenticate takes no body")
        return self._issue_tokens(request)

    async def _refresh(self, request: Request) -> Response:
        with self._lock:
            self.counts["refresh"] += 1
        if not request.headers.get("content-type", "").startswith("text/plain"):
            return _error(400, "BAD REQUEST: the refresh token is a text/plain body")
        token = (await request.body()).decode("utf-8", "replace").strip()
        with self._lock:
            expires = self.refresh_tokens.pop(token, None)  # one use each
        if expires is None or expires <= self._now():
            return _error(401, "UNAUTHORIZED: UnauthorizedException: Invalid refresh token.")
        return self._issue_tokens(request)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        with self._lock:
            expires = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") \
                else None
            return expires is not None and expires > self._now()

    # -- API ------------------------------------------------------------------------------

    def _api(self, handler: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, "UNAUTHORIZED: UnauthorizedException: Invalid or expired "
                              "access token.")
            try:
                return handler(request)
            except BadQuery as exc:
                return _error(400, f"BAD REQUEST: {exc}")

        return endpoint

    @staticmethod
    def _list_response(request: Request, items: list[Record]) -> Response:
        """``ListResponse``: only ``data`` and ``totalItems`` (customers, sites)."""
        number, size = _paging(request)
        return JSONResponse({"data": items[(number - 1) * size:number * size],
                             "totalItems": len(items)})

    @staticmethod
    def _query_response(request: Request, items: list[Record],
                        extra: frozenset[str] = frozenset()) -> Response:
        """``QueryResponse``: rows plus page counters and ``_links``."""
        number, size = _paging(request, extra=extra)
        chunk = items[(number - 1) * size:number * size]
        pages = max(1, -(-len(items) // size))
        path = request.url.path

        def link(n: int) -> str:
            return f"{path}?pageNumber={n}&pageSize={size}"

        return JSONResponse({
            "data": chunk, "pageNumber": number, "pageSize": size, "itemCount": len(chunk),
            "totalItems": len(items), "totalPages": pages,
            "_links": {"firstPage": link(1), "lastPage": link(pages),
                       "previousPage": link(number - 1) if number > 1 else None,
                       "nextPage": link(number + 1) if number < pages else None},
        })

    @staticmethod
    def _as_strings(record: Record, *keys: str) -> Record:
        """The spec types org unit ids of ``Customer``/``Site`` as strings ("100")."""
        return {k: (str(v) if k in keys and v is not None else v) for k, v in record.items()}

    def _customers(self, request: Request) -> Response:
        with self.store.lock:
            rows = [self._as_strings(c, "customerId", "parentId")
                    for c in self.store.customers.values()]
        return self._list_response(request, rows)

    def _sites(self, request: Request) -> Response:
        with self.store.lock:
            rows = [self._as_strings(s, "siteId", "parentId") for s in self.store.sites.values()]
        return self._list_response(request, rows)

    def _devices(self, request: Request) -> Response:
        raw = request.path_params.get("org_unit_id")
        unit = None if raw is None else _unit_id(raw)
        if unit is not None and unit not in self.store.customers and unit not in self.store.sites:
            return _error(404, f"NOT FOUND: org unit {unit} was not found")
        return self._query_response(request, self.store.device_list(unit),
                                    frozenset({"filterId"}))

    def _active_issues(self, request: Request) -> Response:
        unit = _unit_id(request.path_params["org_unit_id"])
        if unit == SO_ID:
            return _error(400, "BAD REQUEST: only organization units that are customers or "
                          "sites are supported")
        if unit not in self.store.customers and unit not in self.store.sites:
            return _error(404, f"NOT FOUND: org unit {unit} was not found")
        return self._query_response(request, self.store.issue_list(unit))

    def _validate(self, request: Request) -> Response:
        return JSONResponse({"message": "The token is valid."})

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app: ``/api/auth/*``, the API subset, ``/_sandbox`` controls."""
        routes = [
            Route("/api/auth/authenticate", self._authenticate, methods=["POST"]),
            Route("/api/auth/refresh", self._refresh, methods=["POST"]),
            Route("/api/auth/validate", self._api(self._validate)),
            Route("/api/customers", self._api(self._customers)),
            Route("/api/sites", self._api(self._sites)),
            Route("/api/devices", self._api(self._devices)),
            Route("/api/org-units/{org_unit_id}/devices", self._api(self._devices)),
            Route("/api/org-units/{org_unit_id}/active-issues", self._api(self._active_issues)),
            *control_routes(self.faults, stats=self.stats),
        ]
        inner = Starlette(routes=routes)
        gated = FaultGate(inner, self.faults, error=forced_error)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # token exchanges are outside the gate: forced faults hit the API calls
            target = inner if scope.get("path", "").startswith("/api/auth/") else gated
            await target(scope, receive, send)

        return app


class SandboxServer(HostedSandbox):
    """Runs an ``NcentralSandbox`` on 127.0.0.1 in a background thread (``Sandbox`` protocol)."""

    sandbox: NcentralSandbox

    def __init__(self, sandbox: NcentralSandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or NcentralSandbox(**kw), port=port)
        self._seed: tuple[int, int] | None = None  # (customer id, device id)
        self._seeded = 0

    def connector_config(self, *, valid_credentials: bool = True,
                         **overrides: Any) -> dict[str, Any]:
        """Raw ``ncentral`` config for this sandbox (small pages exercise paging)."""
        config: dict[str, Any] = {
            "server_url": self.url,
            "allow_http": True,
            "user_api_token": self.sandbox.user_api_token if valid_credentials
            else "eyJhbGciOiJIUzI1NiJ9.not-the-token.x",
            "page_size": 10,
            "requests_per_minute": 100_000,
        }
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Raise ``count`` active issues (``active_issues``) or add ``count`` devices
        (``devices``) on a seed customer."""
        if stream not in ("active_issues", "devices"):
            raise ValueError(f"unknown stream {stream!r}")
        store = self.sandbox.store
        if self._seed is None:
            customer = store.create_customer(f"Seed customer {uuid.uuid4().hex[:6]}")
            device = store.create_device(customer["customerId"], "SEED-PC01")
            self._seed = (customer["customerId"], device["deviceId"])
        customer_id, device_id = self._seed
        for _ in range(count):
            self._seeded += 1
            if stream == "devices":
                store.create_device(customer_id, f"SEED-PC{self._seeded + 1:02d}")
            else:
                store.raise_issue(device_id, f"Seed check {self._seeded}")

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="N-central sandbox on 127.0.0.1")
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
