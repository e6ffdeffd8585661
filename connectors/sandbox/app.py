"""HTTP scaffolding of a vendor sandbox: the fault gate, the ``/_sandbox`` control routes
and a loopback server that runs the app and the webhook dispatcher together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.loopback import LoopbackServer
from connectors.sandbox.dispatch import WebhookDispatcher
from connectors.sandbox.faults import Failure, FaultSwitches

CONTROL_PREFIX = "/_sandbox/"

# The vendor's error shape for a forced failure: (failure) -> response.
ErrorShape = Callable[[Failure], Response]


def plain_error(failure: Failure) -> Response:
    """A forced failure as ``{"error": ...}`` JSON (vendors override the shape)."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return JSONResponse({"error": "forced by the sandbox"}, failure.status, headers)


class ControlError(Exception):
    """A bad control request (answered 400)."""


class FaultGate:
    """Pure ASGI middleware in front of a vendor's API: counts requests, applies the slow
    switch and forced failures (before handling, or after applying a write). Paths under
    ``/_sandbox/`` pass untouched and are not counted."""

    def __init__(self, app: ASGIApp, faults: FaultSwitches, *,
                 error: ErrorShape = plain_error) -> None:
        self.app = app
        self.faults = faults
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        self.faults.record_request(scope["method"], scope["path"])
        action = self.faults.next_action(scope["method"])
        if action.delay_ms:
            await asyncio.sleep(action.delay_ms / 1000)
        failure = action.failure
        if failure is None:
            await self.app(scope, receive, send)
            return
        if failure.after_apply:
            async def swallow(message: Message) -> None:
                """The write happens; its answer is lost."""

            await self.app(scope, receive, swallow)
        await self.error(failure)(scope, receive, send)


async def _args(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise ControlError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


def control_routes(
    faults: FaultSwitches,
    *,
    stats: Callable[[], Mapping[str, Any]] | None = None,
    reset: Callable[[], None] | None = None,
    webhooks: str = "webhooks",
) -> list[Route]:
    """The switch routes every sandbox has (no auth: sandboxes listen on 127.0.0.1).

    ``POST /_sandbox/fail`` {count, status, retry_after, after_apply},
    ``POST /_sandbox/delay`` {ms}, ``POST /_sandbox/<webhooks>/drop`` {next, probability},
    ``POST /_sandbox/<webhooks>/duplicate`` {next}, ``POST /_sandbox/reset``,
    ``GET /_sandbox/stats``. ``webhooks`` is the vendor's word (ConnectWise: callbacks).
    """

    def handler(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                result = fn(await _args(request))
            except (ControlError, ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse(result if result is not None else {"ok": True})

        return endpoint

    def fail(data: dict[str, Any]) -> None:
        count, status = int(data.get("count", 1)), int(data.get("status", 429))
        if data.get("after_apply"):
            faults.fail_next_writes_after_apply(count, status=status)
        else:
            retry_after = data.get("retry_after")
            faults.fail_next(count, status=status,
                             retry_after=None if retry_after is None else int(retry_after))

    def do_reset(data: dict[str, Any]) -> None:
        (reset or faults.reset)()

    return [
        Route(f"{CONTROL_PREFIX}fail", handler(fail), methods=["POST"]),
        Route(f"{CONTROL_PREFIX}delay",
              handler(lambda d: faults.set_delay(int(d.get("ms", 0)))), methods=["POST"]),
        Route(f"{CONTROL_PREFIX}{webhooks}/drop",
              handler(lambda d: faults.drop_webhooks(
                  next=int(d.get("next", 0)), probability=float(d.get("probability", 0.0)))),
              methods=["POST"]),
        Route(f"{CONTROL_PREFIX}{webhooks}/duplicate",
              handler(lambda d: faults.duplicate_webhooks(int(d.get("next", 1)))),
              methods=["POST"]),
        Route(f"{CONTROL_PREFIX}reset", handler(do_reset), methods=["POST"]),
        Route(f"{CONTROL_PREFIX}stats",
              handler(lambda d: dict(stats() if stats else faults.stats()))),
    ]


class SandboxHost:
    """Runs a sandbox's ASGI app on 127.0.0.1 and its webhook dispatcher, together."""

    def __init__(self, app: ASGIApp, dispatcher: WebhookDispatcher, *, port: int = 0) -> None:
        self.dispatcher = dispatcher
        self._server = LoopbackServer(app, port=port)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        return self._server.url

    def start(self) -> None:
        """Serve, then start delivering webhooks."""
        self._server.start()
        self.dispatcher.start()

    def stop(self) -> None:
        """Stop delivering, then stop serving."""
        self.dispatcher.stop()
        self._server.stop()


class HostedSandbox:
    """A vendor sandbox served on 127.0.0.1 with its webhook delivery (``Sandbox``
    protocol): ``url``, ``start``/``stop``, and a context manager.

    A vendor's server subclasses it for its own ``connector_config`` and seeding; its
    sandbox object has ``app``, ``dispatcher`` and a ``base_url`` set on start.
    """

    def __init__(self, sandbox: Any, *, port: int = 0) -> None:
        self.sandbox = sandbox
        self._host = SandboxHost(sandbox.app, sandbox.dispatcher, port=port)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self._host.url

    def start(self) -> Self:
        """Serve and start webhook delivery; returns self."""
        self._host.start()
        self.sandbox.base_url = self._host.url
        return self

    def stop(self) -> None:
        """Stop delivering and serving."""
        self._host.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
