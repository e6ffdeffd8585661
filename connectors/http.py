"""Shared HTTP layer: client factory, status classification, one-request retries, budgets.

No httpx exception leaves this module's ``send``: transport failures become
``TransientError`` (or ``PermanentError`` when the URL itself is unusable).
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception

from connectors.base import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    RequestBudget,
    TLSFailed,
    TransientError,
)
from connectors.budget import MemoryBudget, RedisBudget, make_budget

__all__ = [
    "DEFAULT_RETRY",
    "MemoryBudget",
    "RedisBudget",
    "RequestBudget",
    "RetryPolicy",
    "classify",
    "make_budget",
    "make_client",
    "parse_retry_after",
    "send",
]

log = structlog.get_logger()

# Tenacity sleeps through this name, looked up at call time: tests patch it to a no-op
# (or pass RetryPolicy(sleep=...)).
sleep: Callable[[float], None] = time.sleep

_REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id", "request-id", "cf-ray")
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def make_client(
    base_url: str,
    *,
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout = 30.0,
    transport: httpx.BaseTransport | None = None,
    source: str | None = None,
) -> httpx.Client:
    """Build an ``httpx.Client`` that logs method, path, status and duration (never bodies)."""

    def on_request(request: httpx.Request) -> None:
        request.extensions["msphub_started"] = time.perf_counter()

    def on_response(response: httpx.Response) -> None:
        request = response.request
        started = request.extensions.get("msphub_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
        log.debug(
            "http_request",
            source=source,
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=duration_ms,
        )

    return httpx.Client(
        base_url=base_url,
        auth=auth,
        headers=dict(headers or {}),
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        transport=transport,
        event_hooks={"request": [on_request], "response": [on_response]},
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _reference_time(response: httpx.Response) -> datetime | None:
    """The server's clock from the ``Date`` header, so HTTP-date waits ignore our skew."""
    date = response.headers.get("date")
    if not date:
        return None
    try:
        parsed = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _vendor_code(response: httpx.Response) -> str | None:
    """A short vendor error code from a JSON error body, if one is there."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return str(code)[:60] if code else None


def classify(
    response: httpx.Response, *, source: str | None = None, now: datetime | None = None
) -> ConnectorError | None:
    """Map an HTTP response to the error the caller should act on, or None on success.

    | status            | error          |
    |-------------------|----------------|
    | < 400             | None           |
    | 401, 403          | AuthFailed     |
    | 404               | NotFound       |
    | 408, 5xx          | TransientError |
    | 429               | RateLimited (retry_after from Retry-After) |
    | other 4xx         | PermanentError |
    """
    status = response.status_code
    if status < 400:
        return None
    request_id = next(
        (response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None
    )
    try:
        where = f" from {response.request.method} {response.request.url.path}"
    except RuntimeError:  # a Response built without a request (tests)
        where = ""
    code = _vendor_code(response)
    message = f"HTTP {status}{where}" + (f" ({code})" if code else "")
    kw: dict[str, Any] = {"source": source, "status": status, "request_id": request_id}
    if status == 429:
        retry_after = parse_retry_after(
            response.headers.get("retry-after"), now=now or _reference_time(response)
        )
        return RateLimited(message, retry_after=retry_after, **kw)
    if status in (401, 403):
        return AuthFailed(message, **kw)
    if status == 404:
        return NotFound(message, **kw)
    if status == 408 or status >= 500:
        return TransientError(message, **kw)
    return PermanentError(message, **kw)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one request inline.

    A ``retry_after`` longer than ``max_inline_wait`` ends the loop at once and re-raises
    ``RateLimited``: the actor reschedules instead of sleeping a worker.
    """

    max_attempts: int = 4
    max_total_wait: float = 30.0
    max_inline_wait: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.25
    sleep: Callable[[float], None] | None = None


DEFAULT_RETRY = RetryPolicy()


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    base: float = min(policy.backoff_max, policy.backoff_initial * 2.0 ** (attempt - 1))
    return base * random.uniform(1 - policy.jitter, 1 + policy.jitter)


def _exception(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind an httpx/httpcore exception chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _host(exc: httpx.HTTPError) -> str | None:
    try:
        return exc.request.url.host
    except RuntimeError:  # an exception raised without a request (tests)
        return None


def _translate(exc: httpx.HTTPError, *, source: str | None, idempotent: bool) -> ConnectorError:
    """Turn an httpx exception into our error tree (chained by the caller).

    A certificate that does not verify is ``TLSFailed`` (permanent: an admin fixes the
    certificate or ``ca_bundle``), other TLS failures a transient "TLS handshake failed".
    """
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PermanentError(f"unusable URL ({name})", source=source)
    tls = _ssl_cause(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        host = _host(exc)
        reason = tls.verify_message or tls.reason or "verification failed"
        return TLSFailed(f"TLS certificate of {host or 'the vendor'} not trusted ({reason}); "
                         "set the source's ca_bundle if it uses its own CA",
                         source=source, host=host)
    if tls is not None:
        error = TransientError(f"TLS handshake failed ({tls.reason or type(tls).__name__})",
                               source=source)
        return error  # nothing is sent before the handshake completes: safe to retry
    error = TransientError(f"HTTP transport error ({name})", source=source)
    # Connect/pool failures never reached the server; anything later may have been applied.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    error.maybe_applied = sent and not idempotent
    return error


def _pause_source(budget: RequestBudget | None, error: RateLimited, source: str | None) -> None:
    """A vendor 429 with Retry-After pauses the whole source, not only this request."""
    if budget is None or not error.retry_after:
        return
    if budget.pause(error.retry_after):
        log.warning("source_paused", source=source, seconds=round(error.retry_after, 2),
                    status=error.status, request_id=error.request_id)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    source: str | None = None,
    budget: RequestBudget | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    idempotent: bool | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request, retrying only ``TransientError`` within ``policy``'s bounds.

    Non-idempotent requests (POST, PATCH by default) are retried only when the server
    cannot have applied them (connect failures, 429); otherwise the ``TransientError`` is
    raised with ``maybe_applied = True`` so the caller can look before resending.

    A 429 with ``Retry-After`` pauses ``budget`` (the whole source, every worker). Before
    each attempt a pause is waited out when it fits ``policy.max_inline_wait``, else
    ``RateLimited`` is raised with the seconds left, so the actor reschedules; no request
    is sent during a pause. Then the attempt takes its share of ``budget``.

    Raises:
        ConnectorError: the classified failure of the last attempt.
    """
    idem = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
    # True while the wait just slept was the vendor's Retry-After: that pause is over for
    # this call (re-reading it would wait twice when tests patch the sleep out).
    waited_out_pause = False

    def attempt() -> httpx.Response:
        nonlocal waited_out_pause
        if budget is not None:
            if not waited_out_pause:
                paused = budget.paused_for()
                if paused > 0:
                    raise RateLimited("source paused at the vendor's request",
                                      retry_after=paused, source=source)
            waited_out_pause = False
            budget.acquire()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _translate(exc, source=source, idempotent=idem) from exc
        error = classify(response, source=source)
        if error is not None:
            if isinstance(error, RateLimited):
                _pause_source(budget, error, source)
            elif isinstance(error, TransientError):
                error.maybe_applied = not idem
            raise error
        return response

    def should_retry(exc: BaseException) -> bool:
        return isinstance(exc, TransientError) and not exc.maybe_applied

    def wait(state: RetryCallState) -> float:
        nonlocal waited_out_pause
        exc = _exception(state)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            waited_out_pause = True
            return float(exc.retry_after)
        return _backoff(policy, state.attempt_number)

    def stop(state: RetryCallState) -> bool:
        return (
            state.attempt_number >= policy.max_attempts
            or state.upcoming_sleep > policy.max_inline_wait
            or state.idle_for + state.upcoming_sleep > policy.max_total_wait
        )

    def before_sleep(state: RetryCallState) -> None:
        exc = _exception(state)
        log.warning(
            "http_retry",
            source=source,
            method=method,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 2),
            error=type(exc).__name__,
            status=getattr(exc, "status", None),
        )

    def do_sleep(seconds: float) -> None:
        (policy.sleep or sleep)(seconds)

    retrying = Retrying(
        retry=retry_if_exception(should_retry),
        wait=wait,
        stop=stop,
        sleep=do_sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)
