"""N-central's token exchange as an ``httpx.Auth`` flow: User-API JWT → access + refresh.

```
POST /api/auth/authenticate   Authorization: Bearer <User-API JWT>   (no body)
POST /api/auth/refresh        Content-Type: text/plain, body = the refresh token
→ {"tokens": {"access":  {"token": "...", "type": "Bearer", "expirySeconds": 3600},
              "refresh": {"token": "...", "type": "Body",   "expirySeconds": 90000}}}
```

The JWT is the permanent secret: it goes to ``/auth/authenticate`` only. The access token
(1 h) is refreshed ahead of expiry with the refresh token (the spec types it ``Body``: it
travels as the request body), and a refused or expired refresh falls back to a new
authentication. On a 401 from the API the flow renews once and resends once; a second 401
goes back to the caller, where ``classify`` makes it ``AuthFailed``. Tokens live in this
process only and are never logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from connectors.base import AuthFailed, PermanentError
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send

log = structlog.get_logger()

DEFAULT_ACCESS_LIFE = 3600.0  # seconds (spec: "the expiry is 3600s ( 1h )")
DEFAULT_REFRESH_LIFE = 90000.0  # 25 h, the spec's example
REFRESH_MARGIN = 300.0


@dataclass(frozen=True)
class Tokens:
    """The current access token, the refresh token, and when each should be renewed."""

    access: str = field(repr=False)
    renew_at: float
    refresh: str | None = field(default=None, repr=False)
    refresh_until: float = 0.0


def _life(value: Any, default: float) -> float:
    """``expirySeconds`` as a positive number of seconds, else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return default
    return float(value)


def parse_tokens(body: Any, *, now: float) -> Tokens:
    """The ``AuthenticateResponse``/``AuthRefreshResponse`` body as :class:`Tokens`.

    Raises:
        PermanentError: no usable ``tokens.access.token``.
    """
    tokens = body.get("tokens") if isinstance(body, dict) else None
    if not isinstance(tokens, dict):
        tokens = {}
    access = tokens.get("access")
    if not isinstance(access, dict):
        access = {}
    token = access.get("token")
    if not isinstance(token, str) or not token.strip():
        raise PermanentError("token response has no tokens.access.token")
    life = _life(access.get("expirySeconds"), DEFAULT_ACCESS_LIFE)
    refresh = tokens.get("refresh")
    refresh_token = refresh.get("token") if isinstance(refresh, dict) else None
    refresh_life = _life(refresh.get("expirySeconds") if isinstance(refresh, dict) else None,
                         DEFAULT_REFRESH_LIFE)
    margin = min(REFRESH_MARGIN, life / 2)
    usable_refresh = refresh_token if isinstance(refresh_token, str) and refresh_token else None
    return Tokens(access=token.strip(), renew_at=now + life - margin, refresh=usable_refresh,
                  refresh_until=now + refresh_life - min(REFRESH_MARGIN, refresh_life / 2))


class NcentralAuth(httpx.Auth):
    """Bearer access tokens obtained with the User-API JWT, renewed here (one at a time).

    Raises (from a request through a client using it):
        AuthFailed: N-central refused the JWT (400/401/403 from ``/auth/authenticate``).
        TransientError: the auth endpoint failed or could not be reached.
        PermanentError: the auth response carries no access token.
    """

    def __init__(
        self,
        api_root: str,
        user_api_token: SecretStr,
        *,
        source: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authenticate_url = f"{api_root}/auth/authenticate"
        self.refresh_url = f"{api_root}/auth/refresh"
        self.source = source
        self._jwt = user_api_token
        self._retry = retry
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: Tokens | None = None
        self._http = make_client(api_root, timeout=timeout, transport=transport, source=source)

    def close(self) -> None:
        """Release the auth endpoints' connections."""
        self._http.close()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the access token; on a 401 renew once and resend once."""
        tokens = self.tokens()
        request.headers["Authorization"] = f"Bearer {tokens.access}"
        response = yield request
        if response.status_code != 401:
            return
        log.info("ncentral_token_refused", source=self.source)
        renewed = self.tokens(refused=tokens)
        request.headers["Authorization"] = f"Bearer {renewed.access}"
        yield request  # a second 401 goes back to the caller: classify → AuthFailed

    def tokens(self, *, refused: Tokens | None = None) -> Tokens:
        """Usable tokens: the current ones, else refreshed, else newly authenticated."""
        with self._lock:
            current = self._tokens
            if current is not None and current != refused and self._clock() < current.renew_at:
                return current
            if current is not None and refused is not None and current != refused:
                return current  # another thread renewed while this request was refused
            self._tokens = self._renew(current)
            return self._tokens

    def _renew(self, current: Tokens | None) -> Tokens:
        if current is not None and current.refresh and self._clock() < current.refresh_until:
            try:
                return self._refresh(current.refresh)
            except AuthFailed:
                log.info("ncentral_refresh_refused", source=self.source)
        return self._authenticate()

    def _post(self, url: str, **kwargs: Any) -> Tokens:
        try:
            response = send(self._http, "POST", url, source=self.source, policy=self._retry,
                            idempotent=True, **kwargs)
        except PermanentError as exc:
            if exc.status in (400, 401, 403):
                raise AuthFailed("N-central refused the token exchange", source=self.source,
                                 status=exc.status, request_id=exc.request_id) from exc
            raise
        try:
            body = response.json()
        except ValueError:
            body = None
        try:
            tokens = parse_tokens(body, now=self._clock())
        except PermanentError as exc:
            raise PermanentError(exc.message, source=self.source,
                                 status=response.status_code) from None
        log.info("ncentral_token_obtained", source=self.source,
                 expires_in=round(tokens.renew_at - self._clock()))
        return tokens

    def _authenticate(self) -> Tokens:
        """Exchange the User-API JWT (the only request that carries it)."""
        return self._post(self.authenticate_url, headers={
            "Authorization": f"Bearer {self._jwt.get_secret_value()}",
            "Accept": "application/json"})

    def _refresh(self, refresh_token: str) -> Tokens:
        """Trade the refresh token (as a text/plain body) for new tokens."""
        return self._post(self.refresh_url, content=refresh_token.encode(), headers={
            "Content-Type": "text/plain", "Accept": "application/json"})
