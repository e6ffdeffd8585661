"""Webhook endpoints: ``POST /webhooks/{source}`` (optionally with a secret path segment)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hub.api.auth import runtime_of
from hub.api.errors import error_response
from hub.services.intake import WebhookError, receive

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger()
_LENGTH = re.compile(r"[0-9]{1,20}")


async def _read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused past ``limit`` bytes (413) or when it does not arrive in time (408)."""
    declared = (request.headers.get("content-length") or "").strip()
    if declared and not _LENGTH.fullmatch(declared):  # ASCII digits only ('²' is a digit)
        raise WebhookError(400, "invalid Content-Length header")
    if declared and int(declared) > limit:
        raise WebhookError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise WebhookError(413, f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise WebhookError(408, f"body not received within {timeout:g} s") from None
    return b"".join(chunks)


def _queue(request: Request, event_ids: list[int]) -> None:
    """Hand new events to the workers; a broker outage only delays them.

    The events are committed already, so the answer stays 202: the requeue sweep sends
    every item still pending after a while.
    """
    if not event_ids:
        return
    try:
        runtime_of(request).dispatch.events(event_ids)
    except Exception as exc:  # any broker failure: the inbox row is the truth
        log.warning("webhook_dispatch_failed", events=len(event_ids),
                    error=type(exc).__name__, reason=str(exc)[:200])


async def _handle(request: Request, source: str, secret: str | None) -> JSONResponse:
    try:
        rt = runtime_of(request)
        limit = rt.ctx.settings.webhook_max_body
        body = await _read_limited(request, limit, rt.ctx.settings.webhook_read_timeout)
        got = await run_in_threadpool(
            receive, rt.ctx, rt.sources, source, headers=dict(request.headers), body=body,
            query=dict(request.query_params), path_secret=secret, max_body=limit)
    except WebhookError as exc:
        code = {400: "malformed", 401: "unauthorized", 404: "unknown_source",
                408: "timeout", 413: "too_large"}.get(exc.status, "rejected")
        return error_response(exc.status, code, exc.message)
    _queue(request, got.new_ids)
    body_out: dict[str, Any] = {"accepted": len(got.new_ids), "duplicates": got.duplicates,
                                "event_ids": got.new_ids}
    if got.ignored:
        body_out["ignored"] = True
    return JSONResponse(body_out, status_code=got.status)


@router.post("/webhooks/{source}", status_code=202,
             summary="Receive a webhook from a configured source",
             responses={200: {"description": "Already received (redelivery) or ignored"},
                        400: {"description": "Malformed body"},
                        401: {"description": "Failed verification"},
                        404: {"description": "Unknown source"},
                        408: {"description": "Body not received in time"},
                        413: {"description": "Body too large"},
                        503: {"description": "Cannot verify now (signing key unavailable)"}})
async def webhook(source: str, request: Request) -> JSONResponse:
    """Verify, store and queue a vendor webhook; 202 when new, 200 for a redelivery."""
    return await _handle(request, source, None)


@router.post("/webhooks/{source}/{secret}", status_code=202, include_in_schema=False)
async def webhook_with_secret(source: str, secret: str, request: Request) -> JSONResponse:
    """The same, with the per-instance secret in the path (ConnectWise callbacks)."""
    return await _handle(request, source, secret)
