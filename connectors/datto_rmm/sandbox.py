"""A local Datto RMM simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                  # http://127.0.0.1:<free port>
    rmm = server.sandbox
    site = rmm.store.create_site("Acme HQ")
    rmm.store.create_device(site["uid"], "ACME-FS01")
    rmm.add_webhook("http://127.0.0.1:8000/webhooks/datto/<secret>")
    alert = rmm.store.raise_alert(site["uid"])    # POSTs the "triggered" webhook
    rmm.store.resolve_alert(alert["alertUid"])    # POSTs the "resolved" webhook
    connector = build_connector("datto-rmm", "datto", server.connector_config())
```

It serves the password grant at ``/auth/oauth/token`` (Basic ``public-client:public``,
username = API key, password = API secret) and the ``/api/v2`` subset the connector uses
in vendor shapes (``pageDetails`` with absolute ``nextPageUrl``, pages from 0, epoch-ms
timestamps, ``@class`` alert contexts), checks the bearer token, and POSTs the README's
webhook template to the URLs added with :meth:`DattoRMMSandbox.add_webhook`. The sandbox
kit's switches (forced 429/5xx with ``Retry-After``, delay, dropped/duplicated webhooks;
Python or ``/_sandbox/...``) apply to ``/api`` requests; the token endpoint is outside the
fault gate. Run it standalone with ``python -m connectors.datto_rmm.sandbox``.
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
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.base import WebhookRequest
from connectors.datto_rmm.sandbox_store import Record, SandboxStore
from connectors.sandbox import (
    Failure,
    FaultGate,
    FaultSwitches,
    HostedSandbox,
    WebhookDispatcher,
    control_routes,
)

__all__ = ["DattoRMMSandbox", "SandboxServer"]

PUBLIC_BASIC = "Basic " + base64.b64encode(b"public-client:public").decode()
TOKEN_LIFE = 359_999  # seconds, as Datto answers (100 hours)
DEFAULT_MAX = 50


def forced_error(failure: Failure) -> Response:
    """A forced failure (Datto's error bodies are unspecified: a small JSON object)."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    message = "Too Many Requests" if failure.status == 429 else "forced by the sandbox"
    return JSONResponse({"error": message, "status": failure.status}, failure.status, headers)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "status": status}, status)


class DattoRMMSandbox:
    """Simulated account: records, tokens, switches, webhook delivery and the ASGI ``app``."""

    def __init__(self, *, api_key: str = "SANDBOXAPIKEY0000000000000000000",
                 api_secret: str = "SANDBOXAPISECRET000000000000000", webhook_workers: int = 2,
                 loopback_only: bool = True, clock: Callable[[], datetime] | None = None,
                 webhook_timeout: float = 30.0) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.webhook_urls: list[str] = []
        self.store = SandboxStore(clock=clock, on_alert=self._on_alert)
        self.faults = FaultSwitches()
        # a generous delivery timeout: a busy hub on a shared test machine answers slowly
        self.dispatcher = WebhookDispatcher(workers=webhook_workers, loopback_only=loopback_only,
                                            timeout=webhook_timeout, faults=self.faults,
                                            name="datto-webhooks")
        self._lock = threading.Lock()

    # -- webhooks -------------------------------------------------------------------------

    def add_webhook(self, url: str) -> None:
        """A global webhook (Setup → Integrations → Global Webhooks), triggered + resolved."""
        with self._lock:
            if url not in self.webhook_urls:
                self.webhook_urls.append(url)

    @staticmethod
    def webhook_body(state: str, alert: Record) -> bytes:
        """The README's recommended template with Datto's variables filled in."""
        source = alert["alertSourceInfo"]
        body: Record = {"event": state, "alertUid": alert["alertUid"],
                        "deviceUid": source.get("deviceUid") or "",
                        "siteUid": source.get("siteUid") or "", "platform": "sandbox"}
        if state == "triggered":
            body.update(priority=alert.get("priority") or "",
                        hostname=source.get("deviceName") or "",
                        siteName=source.get("siteName") or "",
                        message=alert.get("diagnostics") or "")
        return json.dumps(body).encode()

    def _on_alert(self, state: str, alert: Record) -> None:
        with self._lock:
            urls = list(self.webhook_urls)
        for url in urls:
            self.dispatcher.send(url, self.webhook_body(state, alert),
                                 {"content-type": "application/json"})

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued webhooks were attempted; False on timeout."""
        return self.dispatcher.wait_idle(timeout)

    # -- switches -------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

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
        if request.headers.get("authorization") != PUBLIC_BASIC:
            return JSONResponse({"error": "invalid_client"}, 401)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if form.get("grant_type") != "password":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if form.get("username") != self.api_key or form.get("password") != self.api_secret:
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "Bad credentials"}, 400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer",
                             "expires_in": TOKEN_LIFE, "scope": "default",
                             "jti": str(uuid.uuid4())})

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        with self._lock:
            return header.startswith("Bearer ") and header[7:] in self.tokens

    def _page(self, request: Request, key: str, items: list[Record]) -> Response:
        """Datto's envelope: ``pageDetails`` with absolute next/prev URLs, pages from 0."""
        q = request.query_params
        try:
            page, size = int(q.get("page", "0")), int(q.get("max", str(DEFAULT_MAX)))
        except ValueError:
            return _error(400, "page and max must be integers")
        if page < 0 or size < 1:
            return _error(400, "page must be >= 0 and max >= 1")
        size = min(size, 250)
        chunk = items[page * size:(page + 1) * size]
        path = f"{self.base_url}{request.url.path}"

        def link(number: int) -> str:
            return f"{path}?page={number}&max={size}"

        return JSONResponse({
            "pageDetails": {
                "count": len(chunk), "totalCount": len(items),
                "prevPageUrl": link(page - 1) if page > 0 else None,
                "nextPageUrl": link(page + 1) if (page + 1) * size < len(items) else None,
            },
            key: chunk,
        })

    def _api(self, handler: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, "Request can not be authorized.")
            return handler(request)

        return endpoint

    def _alerts(self, state: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            site = request.path_params.get("site_uid")
            if site is not None and site not in self.store.sites:
                return _error(404, "site not found")
            return self._page(request, "alerts", self.store.alert_list(
                resolved=state == "resolved", site_uid=site))

        return handler

    def _one(self, table: str, param: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            with self.store.lock:
                record = getattr(self.store, table).get(request.path_params[param])
                record = dict(record) if record is not None else None
            return JSONResponse(record) if record is not None else _error(404, "not found")

        return handler

    def _devices(self, request: Request) -> Response:
        site = request.path_params.get("site_uid")
        if site is not None and site not in self.store.sites:
            return _error(404, "site not found")
        return self._page(request, "devices", self.store.device_list(site))

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app: token endpoint, the ``/api/v2`` subset, ``/_sandbox`` controls."""
        api = "/api/v2"
        routes = [
            Route("/auth/oauth/token", self._token, methods=["POST"]),
            Route(f"{api}/account/alerts/open", self._api(self._alerts("open"))),
            Route(f"{api}/account/alerts/resolved", self._api(self._alerts("resolved"))),
            Route(api + "/site/{site_uid}/alerts/open", self._api(self._alerts("open"))),
            Route(api + "/site/{site_uid}/alerts/resolved",
                  self._api(self._alerts("resolved"))),
            Route(api + "/alert/{alert_uid}", self._api(self._one("alerts", "alert_uid"))),
            Route(f"{api}/account/sites", self._api(
                lambda r: self._page(r, "sites", self.store.site_list()))),
            Route(f"{api}/account/devices", self._api(self._devices)),
            Route(api + "/site/{site_uid}/devices", self._api(self._devices)),
            Route(api + "/device/{device_uid}", self._api(self._one("devices", "device_uid"))),
            Route(f"{api}/system/pagination",
                  self._api(lambda r: JSONResponse({"max": DEFAULT_MAX}))),
            *control_routes(self.faults, stats=self.stats),
        ]
        inner = Starlette(routes=routes)
        gated = FaultGate(inner, self.faults, error=forced_error)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # the token endpoint is outside the gate: the 600/60 s budget counts API calls
            target = inner if scope.get("path", "").startswith("/auth/") else gated
            await target(scope, receive, send)

        return app


class SandboxServer(HostedSandbox):
    """Runs a ``DattoRMMSandbox`` on 127.0.0.1 in a background thread (``Sandbox`` protocol)."""

    sandbox: DattoRMMSandbox

    def __init__(self, sandbox: DattoRMMSandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or DattoRMMSandbox(**kw), port=port)
        self._seed_site: str | None = None

    def connector_config(self, *, valid_credentials: bool = True,
                         **overrides: Any) -> dict[str, Any]:
        """Raw ``datto-rmm`` config for this sandbox (small pages exercise paging)."""
        rmm = self.sandbox
        config: dict[str, Any] = {
            "api_url": self.url,
            "allow_any_host": True,
            "api_key": rmm.api_key,
            "api_secret": rmm.api_secret if valid_credentials else "WRONGSECRET",
            "webhook_secret": "sandbox-webhook-secret-0123456789",
            "page_size": 10,
            "requests_per_minute": 100_000,
        }
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Create ``count`` open (``alerts_open``) or resolved (``alerts_resolved``) alerts."""
        if stream not in ("alerts_open", "alerts_resolved"):
            raise ValueError(f"unknown stream {stream!r}")
        store = self.sandbox.store
        site = self._site()
        for i in range(count):
            alert = store.raise_alert(site, diagnostics=f"Seed alert {i}")
            if stream == "alerts_resolved":
                store.resolve_alert(alert["alertUid"])

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)

    # -- WebhookSandbox (the contract suite) -----------------------------------------------

    signs_webhooks = False  # only the secret in the URL; the connector re-reads the alert

    def _site(self) -> str:
        store = self.sandbox.store
        if self._seed_site is None:
            site = store.create_site(f"Seed site {uuid.uuid4().hex[:6]}")
            store.create_device(site["uid"], "SEED-PC01")
            self._seed_site = site["uid"]
        return self._seed_site

    def webhook_delivery(self, event: str = "created", *, thin: bool = False) -> WebhookRequest:
        """The template webhook for an alert raised now (``created``) or raised and resolved
        (``updated``); Datto's webhooks are always thin."""
        store = self.sandbox.store
        alert = store.raise_alert(self._site(), diagnostics="Contract alert", notify=False)
        state = "triggered"
        if event == "updated":
            alert = store.resolve_alert(alert["alertUid"], notify=False)
            state = "resolved"
        elif event != "created":
            raise ValueError(f"unknown event {event!r}")
        return self.webhook_request(self.sandbox.webhook_body(state, alert))

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued webhooks were attempted."""
        return self.sandbox.wait_for_webhooks(timeout)

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` POSTed to our ``/webhooks/<source>/<secret>`` URL (Datto signs nothing)."""
        token = secret if secret is not None else self.connector_config()["webhook_secret"]
        return WebhookRequest(headers={"content-type": "application/json"}, body=body,
                              path_secret=token)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Datto RMM sandbox on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8124)
    parser.add_argument("--webhook", action="append", default=[],
                        help="deliver alert webhooks to this URL (repeatable)")
    args = parser.parse_args(argv)
    server = SandboxServer(port=args.port)
    for url in args.webhook:
        server.sandbox.add_webhook(url)
    server.start()
    print(json.dumps(server.connector_config(), indent=2))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
