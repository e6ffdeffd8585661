"""Per-request context: the request id (in, out and in every log line), access log, metrics."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from fastapi import HTTPException
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.errors import error_response
from hub.api.metrics import UNMATCHED_ROUTE, ApiMetrics
from hub.logging import bind_context

access_log = structlog.get_logger("hub.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is reused only when it is short and plain (it ends up in logs and headers).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# /webhooks/{source}/{secret}: everything after the source segment may be a secret.
_WEBHOOK_SECRET = re.compile(r"^(/webhooks/[^/]*)/.+$")


def loggable_path(path: str) -> str:
    """The request path as the access log may show it: a webhook secret carried in the
    path (``/webhooks/cw-prod/<secret>``) becomes ``***``."""
    return _WEBHOOK_SECRET.sub(r"\1/***", path)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


class BodyTooLarge(HTTPException):
    """A request body beyond the limit (FastAPI re-raises HTTPExceptions from body reading)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Pure ASGI middleware, so the bound context reaches sync endpoints in the threadpool.

    Logs one ``http_request`` line per request with method, path (never the query string,
    which may hold a dashboard ``?token=``, nor a webhook secret path segment), status
    and duration; never headers or bodies.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # what the client gets when an exception escapes the app
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        received = 0

        async def receive_bounded() -> Message:
            # Chunked bodies have no Content-Length: count what actually arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        with bind_context(request_id=request_id):
            try:
                declared = _declared_length(scope)
                if declared is not None and declared > self.max_body:
                    too_large = BodyTooLarge(self.max_body)
                    refusal = error_response(413, "too_large", str(too_large.detail))
                    await refusal(scope, receive, send_with_id)
                else:
                    await self.app(scope, receive_bounded, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                method = str(scope.get("method", ""))
                self.metrics.observe_request(method, _route_template(scope), status, seconds)
                access_log.info("http_request", method=method,
                                path=loggable_path(str(scope.get("path", ""))),
                                status=status, duration_ms=round(seconds * 1000, 1))
