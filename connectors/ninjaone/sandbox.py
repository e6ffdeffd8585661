"""A local NinjaOne simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                  # http://127.0.0.1:<free port>
    ninja = server.sandbox
    org = ninja.store.create_organization("Acme Ltd")
    device = ninja.store.create_device(org["id"], "ACME-FS01")   # a NODE_CREATED activity
    connector = build_connector("ninjaone", "ninja", server.connector_config())
    connector.register_webhooks("http://127.0.0.1:8000/webhooks/ninja")  # PUT /v2/webhook
    ninja.store.backup_job(device["id"])          # NINJA_BACKUP_BACKUPJOB_COMPLETED, POSTed
```

It serves the client-credentials grant at ``/ws/oauth/token`` (scopes ``monitoring``,
``management``, ``control``; a GET needs ``monitoring``, the webhook configuration
``management``) and the ``/v2`` subset the connector uses in vendor shapes: activities
newest first with ``newerThan``/``olderThan`` meaning ids above/below, ``lastActivityId``,
``after`` paging, named-cursor query reports, the device filter syntax (``org = 1``,
``org in (1,2)``, ``id``, ``loc``, ``class``, ``online``/``offline``, joined by ``AND``).
Activities go to the webhook registered with ``PUT /v2/webhook``, with its custom headers
and expanded device. The kit's switches (forced 429/5xx with ``Retry-After``, delay,
dropped/duplicated webhooks; Python or ``/_sandbox/...``) apply to ``/v2`` requests; the
token endpoint is outside the fault gate. Run it standalone with
``python -m connectors.ninjaone.sandbox``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import signal
import threading
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
from connectors.ninjaone.config import NinjaOneConfig
from connectors.ninjaone.sandbox_query import FilterError, device_matcher
from connectors.ninjaone.sandbox_store import Record, SandboxStore
from connectors.sandbox import (
    Failure,
    FaultGate,
    FaultSwitches,
    HostedSandbox,
    WebhookDispatcher,
    control_routes,
)

__all__ = ["NinjaOneSandbox", "SandboxServer"]

TOKEN_LIFE = 3600
SCOPES = frozenset({"monitoring", "management", "control"})


def forced_error(failure: Failure) -> Response:
    """A forced failure in NinjaOne's error shape (``resultCode``, ``errorMessage``)."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    message = "Too Many Requests" if failure.status == 429 else "forced by the sandbox"
    return JSONResponse({"resultCode": str(failure.status), "errorMessage": message,
                         "incidentId": secrets.token_hex(6)}, failure.status, headers)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"resultCode": str(status), "errorMessage": message}, status)


class NinjaOneSandbox:
    """Simulated tenant: records, tokens, switches, webhook delivery and the ASGI ``app``."""

    def __init__(self, *, client_id: str = "sandbox-client-id",
                 client_secret: str = "sandbox-client-secret-0123456789",
                 webhook_workers: int = 2, loopback_only: bool = True,
                 clock: Callable[[], datetime] | None = None,
                 webhook_timeout: float = 30.0) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.tokens: dict[str, frozenset[str]] = {}
        self.token_requests: list[frozenset[str]] = []
        self.webhook: Record | None = None
        self.store = SandboxStore(clock=clock, on_activity=self._on_activity)
        self.faults = FaultSwitches()
        self.dispatcher = WebhookDispatcher(workers=webhook_workers, loopback_only=loopback_only,
                                            timeout=webhook_timeout, faults=self.faults,
                                            name="ninjaone-webhooks")
        self._lock = threading.Lock()

    # -- webhooks -------------------------------------------------------------------------

    def webhook_body(self, activity: Record, expand: list[str] | None = None) -> bytes:
        """The activity as NinjaOne posts it, with the device expanded when asked."""
        body = dict(activity)
        if "device" in (expand or ["device"]) and activity.get("deviceId") is not None:
            device = self.store.device_view(activity["deviceId"])
            if device is not None:
                body["device"] = device
        return json.dumps(body).encode()

    def _wanted(self, config: Record, activity: Record) -> bool:
        orgs = config.get("organizationIds")
        if orgs:
            device = self.store.device_view(activity.get("deviceId") or 0)
            if device is None or device["organizationId"] not in orgs:
                return False
        filters = config.get("activities")
        if filters:
            return activity["statusCode"] in (filters.get(activity["activityType"]) or [])
        return True

    def _on_activity(self, activity: Record) -> None:
        with self._lock:
            config = dict(self.webhook) if self.webhook else None
        if config is None or not self._wanted(config, activity):
            return
        headers = {"content-type": "application/json"}
        for header in config.get("headers") or []:
            headers[str(header["name"])] = str(header["value"])
        self.dispatcher.send(config["url"], self.webhook_body(activity, config.get("expand")),
                             headers)

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
                "token_requests": len(self.token_requests)}

    # -- auth -----------------------------------------------------------------------------

    def _client_of(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):  # client_secret_basic
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return "", ""
            return user, password
        return form.get("client_id", ""), form.get("client_secret", "")  # client_secret_post

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        client_id, client_secret = self._client_of(request, form)
        if client_id != self.client_id or client_secret != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        scopes = frozenset((form.get("scope") or "").split())
        if not scopes or not scopes <= SCOPES:
            return JSONResponse({"error": "invalid_scope"}, 400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = scopes
            self.token_requests.append(scopes)
        return JSONResponse({"access_token": token, "token_type": "Bearer",
                             "expires_in": TOKEN_LIFE, "scope": " ".join(sorted(scopes))})

    def _api(self, handler: Callable[[Request], Any], scope: str = "monitoring"
             ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            with self._lock:
                granted = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
            if granted is None:
                return _error(401, "Unauthorized")
            if scope not in granted:
                return _error(403, f"the token lacks the '{scope}' scope")
            try:
                result = handler(request)
                if hasattr(result, "__await__"):
                    result = await result
            except FilterError as exc:
                return _error(400, str(exc))
            except (KeyError, ValueError):
                return _error(400, "bad request parameters")
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    # -- handlers -------------------------------------------------------------------------

    @staticmethod
    def _int(request: Request, name: str, default: int | None = None) -> int | None:
        value = request.query_params.get(name)
        return default if value is None else int(value)

    def _device_ids(self, df: str | None) -> set[int]:
        match = device_matcher(df)
        with self.store.lock:
            return {d["id"] for d in self.store.devices.values() if match(d)}

    def _activities(self, request: Request) -> Any:
        q = request.query_params
        size = self._int(request, "pageSize", 200) or 200
        if not 10 <= size <= 1000:
            return _error(400, "pageSize must be between 10 and 1000")
        newer, older = self._int(request, "newerThan"), self._int(request, "olderThan")
        devices = self._device_ids(q.get("df")) if q.get("df") else None
        klass = q.get("class", "ALL")
        chosen = []
        for activity in self.store.activity_list():  # newest first
            if newer is not None and activity["id"] <= newer:
                continue
            if older is not None and activity["id"] >= older:
                continue
            if devices is not None and activity.get("deviceId") not in devices:
                continue
            if q.get("seriesUid") and activity["seriesUid"] != q["seriesUid"]:
                continue
            system = activity["activityType"] == "SYSTEM"
            if (klass == "DEVICE" and system) or (klass == "SYSTEM" and not system) or \
                    klass == "USER":
                continue
            chosen.append(activity)
            if len(chosen) == size:
                break
        return {"lastActivityId": self.store.last_activity_id(), "activities": chosen}

    def _after_page(self, request: Request, records: list[Record]) -> list[Record]:
        size = self._int(request, "pageSize", 100) or 100
        after = self._int(request, "after", 0) or 0
        return [r for r in sorted(records, key=lambda r: r["id"]) if r["id"] > after][:size]

    def _devices(self, request: Request) -> Any:
        match = device_matcher(request.query_params.get("df"))
        with self.store.lock:
            devices = [dict(d) for d in self.store.devices.values() if match(d)]
        return self._after_page(request, devices)

    def _organizations(self, request: Request) -> Any:
        with self.store.lock:
            orgs = [dict(o) for o in self.store.organizations.values()]
        return self._after_page(request, orgs)

    def _one(self, table: str) -> Callable[[Request], Any]:
        def handler(request: Request) -> Any:
            with self.store.lock:
                record = getattr(self.store, table).get(int(request.path_params["id"]))
                record = dict(record) if record is not None else None
            return record if record is not None else _error(404, "not found")

        return handler

    def _alerts(self, request: Request) -> Any:
        devices = self._device_ids(request.query_params.get("df"))
        kind = request.query_params.get("sourceType")
        with self.store.lock:
            return [dict(a) for a in self.store.alerts.values() if a["deviceId"] in devices
                    and (not kind or a["sourceType"] == kind)]

    def _report(self, rows: Callable[[], list[Record]]) -> Callable[[Request], Any]:
        """A named-cursor report: the cursor's name holds the filtered rows' offset."""

        def handler(request: Request) -> Any:
            size = self._int(request, "pageSize", 100) or 100
            name = request.query_params.get("cursor")
            if name:
                df, _, offset_text = name.rpartition("|")
                offset = int(offset_text)
            else:
                df, offset = request.query_params.get("df", ""), 0
            devices = self._device_ids(df or None)
            with self.store.lock:
                selected = [dict(r) for r in rows() if r["deviceId"] in devices]
            chunk = selected[offset:offset + size]
            return {"cursor": {"name": f"{df}|{offset + len(chunk)}", "offset": offset,
                               "count": len(chunk), "expires": 300.0}, "results": chunk}

        return handler

    async def _put_webhook(self, request: Request) -> Response:
        body = json.loads(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return _error(400, "url is required")
        with self._lock:
            self.webhook = body
        return Response(status_code=204)

    def _delete_webhook(self, request: Request) -> Response:
        with self._lock:
            self.webhook = None
        return Response(status_code=204)

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app: token endpoint, the ``/v2`` subset, ``/_sandbox`` controls."""
        store = self.store
        routes = [
            Route("/ws/oauth/token", self._token, methods=["POST"]),
            Route("/v2/activities", self._api(self._activities)),
            Route("/v2/alerts", self._api(self._alerts)),
            Route("/v2/organizations", self._api(self._organizations)),
            Route("/v2/organization/{id:int}", self._api(self._one("organizations"))),
            Route("/v2/devices-detailed", self._api(self._devices)),
            Route("/v2/device/{id:int}", self._api(self._one("devices"))),
            Route("/v2/backup/jobs", self._api(self._report(lambda: store.backup_jobs))),
            Route("/v2/queries/antivirus-status",
                  self._api(self._report(lambda: list(store.antivirus.values())))),
            Route("/v2/queries/os-patch-installs",
                  self._api(self._report(lambda: store.patch_installs))),
            Route("/v2/queries/os-patches",
                  self._api(self._report(lambda: store.pending_patches))),
            Route("/v2/queries/device-health",
                  self._api(self._report(store.health_rows))),
            Route("/v2/webhook", self._api(self._put_webhook, "management"), methods=["PUT"]),
            Route("/v2/webhook", self._api(self._delete_webhook, "management"),
                  methods=["DELETE"]),
            *control_routes(self.faults, stats=self.stats),
        ]
        inner = Starlette(routes=routes)
        gated = FaultGate(inner, self.faults, error=forced_error)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # the token endpoint is outside the gate: the switches target API calls
            target = inner if scope.get("path", "").startswith("/ws/") else gated
            await target(scope, receive, send)

        return app


class SandboxServer(HostedSandbox):
    """Runs a ``NinjaOneSandbox`` on 127.0.0.1 in a background thread (``Sandbox`` protocol)."""

    sandbox: NinjaOneSandbox

    def __init__(self, sandbox: NinjaOneSandbox | None = None, *, port: int = 0,
                 **kw: Any) -> None:
        super().__init__(sandbox or NinjaOneSandbox(**kw), port=port)
        self._seed_device: int | None = None

    def connector_config(self, *, valid_credentials: bool = True,
                         **overrides: Any) -> dict[str, Any]:
        """Raw ``ninjaone`` config for this sandbox (small pages exercise the walk)."""
        ninja = self.sandbox
        config: dict[str, Any] = {
            "instance_url": self.url,
            "allow_any_host": True,
            "client_id": ninja.client_id,
            "client_secret": ninja.client_secret if valid_credentials else "WRONG-SECRET",
            "webhook_secret": "sandbox-webhook-secret-0123456789",
            "page_size": 10,
            "requests_per_minute": 100_000,
        }
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Record ``count`` completed backup jobs (``activities``) on a seed device."""
        if stream != "activities":
            raise ValueError(f"unknown stream {stream!r}")
        device = self._device()
        for _ in range(count):
            self.sandbox.store.backup_job(device)

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)

    # -- WebhookSandbox (the contract suite) -----------------------------------------------

    signs_webhooks = False  # a custom header only; the connector re-reads the activity

    def _device(self) -> int:
        store = self.sandbox.store
        if self._seed_device is None:
            org = store.create_organization("Seed organization")
            self._seed_device = store.create_device(org["id"], "SEED-PC01")["id"]
        return self._seed_device

    def webhook_delivery(self, event: str = "created", *, thin: bool = False) -> WebhookRequest:
        """The activity webhook (device expanded) for a condition triggered now
        (``created``) or triggered and reset (``updated``); NinjaOne's are always thin."""
        store = self.sandbox.store
        activity = store.trigger_condition(self._device(), "Contract disk space low")
        if event == "updated":
            activity = store.reset_condition(str(activity["seriesUid"]))
        elif event != "created":
            raise ValueError(f"unknown event {event!r}")
        return self.webhook_request(self.sandbox.webhook_body(activity))

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued webhooks were attempted."""
        return self.sandbox.wait_for_webhooks(timeout)

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` with the custom secret header our ``PUT /v2/webhook`` registers."""
        config = self.connector_config()
        value = secret if secret is not None else config["webhook_secret"]
        header = str(config.get("webhook_header")
                     or NinjaOneConfig.model_fields["webhook_header"].default)
        return WebhookRequest(headers={"content-type": "application/json", header: value},
                              body=body)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="NinjaOne sandbox on 127.0.0.1")
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
