"""OAuth2 as an ``httpx.Auth`` flow: client-credentials and password grants, shared tokens.

```python
auth = OAuth2Auth(
    token_url="https://acme.halopsa.com/auth/token",
    grant=ClientCredentials(client_id="…", client_secret=SecretStr("…"), scope="all",
                            extra={"tenant": "acme"}),
    store=make_token_store("halo-prod", redis_client=redis_client),
    source="halo-prod",
    transport=transport,
)
client = make_client("https://acme.halopsa.com/api", auth=auth, transport=transport)
```

The token is cached per source in a ``TokenStore`` (Redis when configured, so every
worker uses one token; in memory otherwise), refreshed ``refresh_margin`` seconds before
it expires, and refreshed once when the API answers 401; a second 401 is returned as is,
and ``classify`` turns it into ``AuthFailed``. One refresh at a time: a thread lock in a
process, and a short Redis lock between workers, while the others wait for its result.
Tokens and secrets are never logged; the store holds the token only for its lifetime.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import redis
import structlog
from pydantic import SecretStr

from connectors.base import AuthFailed, PermanentError, TransientError
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send

__all__ = [
    "ClientCredentials",
    "MemoryTokenStore",
    "OAuth2Auth",
    "PasswordGrant",
    "RedisTokenStore",
    "Token",
    "TokenStore",
    "make_token_store",
]

log = structlog.get_logger()


@dataclass(frozen=True)
class Token:
    """An access token, when to refresh it and when it expires (``time.time`` seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_at: float
    token_type: str = "Bearer"

    def fresh(self, now: float) -> bool:
        """True until it is time to refresh."""
        return now < self.refresh_at


@dataclass(frozen=True)
class ClientCredentials:
    """``grant_type=client_credentials`` (HaloPSA, Datto RMM, NinjaOne, N-central)."""

    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    basic_auth: bool = False  # send the client credentials as HTTP Basic, not form fields

    def form(self) -> dict[str, str]:
        """The token request's form fields (secrets included; never log it)."""
        data = {"grant_type": "client_credentials", **self.extra}
        if not self.basic_auth:
            data["client_id"] = self.client_id
            data["client_secret"] = self.client_secret.get_secret_value()
        if self.scope:
            data["scope"] = self.scope
        return data


@dataclass(frozen=True)
class PasswordGrant:
    """``grant_type=password`` for an API user (Datto RMM's API key and secret)."""

    username: str
    password: SecretStr
    client_id: str
    client_secret: SecretStr | None = None
    scope: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    basic_auth: bool = False

    def form(self) -> dict[str, str]:
        """The token request's form fields (secrets included; never log it)."""
        data = {
            "grant_type": "password",
            "username": self.username,
            "password": self.password.get_secret_value(),
            **self.extra,
        }
        if not self.basic_auth:
            data["client_id"] = self.client_id
            if self.client_secret is not None:
                data["client_secret"] = self.client_secret.get_secret_value()
        if self.scope:
            data["scope"] = self.scope
        return data


Grant = ClientCredentials | PasswordGrant


class TokenStore(Protocol):
    """Where a source's current token is kept, shared by every worker that can reach it."""

    def get(self) -> Token | None:
        """The stored token, or None."""

    def put(self, token: Token, ttl: float) -> None:
        """Store ``token`` for ``ttl`` seconds (until it expires)."""

    def discard(self, token: Token) -> None:
        """Forget ``token`` if it is still the stored one (the API refused it)."""

    def lock(self) -> bool:
        """Try to become the one worker fetching a token; False when another is."""

    def unlock(self) -> None:
        """Let others fetch again."""


class MemoryTokenStore:
    """A token kept in this process (no Redis configured)."""

    def __init__(self) -> None:
        self._token: Token | None = None
        self._guard = threading.Lock()

    def get(self) -> Token | None:
        """The stored token, or None."""
        with self._guard:
            return self._token

    def put(self, token: Token, ttl: float) -> None:
        """Store ``token`` (it carries its own expiry)."""
        with self._guard:
            self._token = token

    def discard(self, token: Token) -> None:
        """Forget ``token`` if it is still the stored one."""
        with self._guard:
            if self._token == token:
                self._token = None

    def lock(self) -> bool:
        """Always granted: ``OAuth2Auth``'s thread lock already serialises a process."""
        return True

    def unlock(self) -> None:
        """Nothing to release."""


# Delete the token only if it is still the refused one (another worker may have stored
# a new one since).
_DISCARD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenStore:
    """The token in Redis under ``key`` (expiring with it), shared by every worker."""

    def __init__(
        self, client: redis.Redis, key: str, *, lock_seconds: float = 15.0,
        source: str | None = None,
    ) -> None:
        self.key = key
        self.lock_key = f"{key}:refreshing"
        self.source = source
        self._client = client
        self._lock_ms = max(1, int(lock_seconds * 1000))
        self._owner = uuid.uuid4().hex
        self._discard = client.register_script(_DISCARD)
        self._unlock = client.register_script(_UNLOCK)

    def _redis(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except redis.RedisError as exc:
            raise TransientError("token store unavailable", source=self.source) from exc

    @staticmethod
    def _dump(token: Token) -> str:
        return json.dumps({"access_token": token.access_token, "expires_at": token.expires_at,
                           "refresh_at": token.refresh_at, "token_type": token.token_type})

    def get(self) -> Token | None:
        """The stored token, or None (also when the stored value is unreadable)."""
        raw = self._redis(lambda: self._client.get(self.key))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Token(str(data["access_token"]), float(data["expires_at"]),
                         float(data["refresh_at"]), str(data.get("token_type", "Bearer")))
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, token: Token, ttl: float) -> None:
        """Store ``token`` with a TTL that ends when it expires."""
        ttl_ms = max(1, int(ttl * 1000))
        self._redis(lambda: self._client.set(self.key, self._dump(token), px=ttl_ms))

    def discard(self, token: Token) -> None:
        """Forget ``token`` if it is still the stored one."""
        self._redis(lambda: self._discard(keys=[self.key], args=[self._dump(token)]))

    def lock(self) -> bool:
        """Take the short refresh lock (it expires by itself if this worker dies)."""
        taken = self._redis(lambda: self._client.set(self.lock_key, self._owner, nx=True,
                                                     px=self._lock_ms))
        return bool(taken)

    def unlock(self) -> None:
        """Release the refresh lock if this worker still holds it."""
        self._redis(lambda: self._unlock(keys=[self.lock_key], args=[self._owner]))


def make_token_store(
    source: str, *, redis_client: redis.Redis | None = None, namespace: str = "msphub"
) -> TokenStore:
    """The token store of one connector instance: Redis-backed when a client is given."""
    if redis_client is not None:
        return RedisTokenStore(redis_client, f"{namespace}:oauth:{source}", source=source)
    return MemoryTokenStore()


class OAuth2Auth(httpx.Auth):
    """Bearer tokens from an OAuth2 token endpoint, fetched, cached and refreshed here.

    Raises (from a request through a client using it):
        AuthFailed: the token endpoint refused the credentials (400/401/403).
        TransientError: the token endpoint failed or could not be reached.
        PermanentError: the token response has no usable ``access_token``.
    """

    def __init__(
        self,
        token_url: str,
        grant: Grant,
        *,
        store: TokenStore | None = None,
        source: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        refresh_margin: float = 300.0,
        default_expires_in: float = 3600.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        wait_for_peer: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token_url = token_url
        self.grant = grant
        self.store: TokenStore = store or MemoryTokenStore()
        self.source = source
        self.refresh_margin = refresh_margin
        self.default_expires_in = default_expires_in
        self.wait_for_peer = wait_for_peer
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http = make_client(token_url, timeout=timeout, transport=transport, source=source)

    def close(self) -> None:
        """Release the token endpoint's connections."""
        self._http.close()

    # -- the flow -------------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the current token; on a 401 refresh once and resend once."""
        token = self.token()
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        response = yield request
        if response.status_code != 401:
            return
        log.info("oauth_token_refused", source=self.source)
        retry_token = self.token(refused=token)
        request.headers["Authorization"] = f"{retry_token.token_type} {retry_token.access_token}"
        yield request  # a second 401 goes back to the caller: classify → AuthFailed

    # -- tokens ---------------------------------------------------------------------------

    def token(self, *, refused: Token | None = None) -> Token:
        """A fresh token: the shared one, else a new one (one fetch at a time)."""
        if refused is not None:
            self.store.discard(refused)
        current = self._usable(refused)
        if current is not None:
            return current
        with self._lock:
            current = self._usable(refused)
            if current is not None:
                return current
            return self._refresh(refused)

    def _usable(self, refused: Token | None) -> Token | None:
        token = self.store.get()
        if token is None or token == refused:
            return None
        return token if token.fresh(self._clock()) else None

    def _refresh(self, refused: Token | None) -> Token:
        """Fetch a token, or wait for the worker that holds the refresh lock to store one."""
        deadline = self._clock() + self.wait_for_peer
        while not self.store.lock():
            current = self._usable(refused)
            if current is not None:
                return current
            if self._clock() >= deadline:
                break  # the other worker is stuck or gone: fetch our own
            self._sleep(0.05)
        try:
            current = self._usable(refused)  # stored while we waited for the lock
            if current is not None:
                return current
            token = self._fetch()
            expires_in = token.expires_at - self._clock()
            self.store.put(token, expires_in)
            log.info("oauth_token_refreshed", source=self.source, expires_in=round(expires_in))
            return token
        finally:
            self.store.unlock()

    def _fetch(self) -> Token:
        auth = None
        if self.grant.basic_auth:
            secret = getattr(self.grant, "client_secret", None)
            auth = httpx.BasicAuth(self.grant.client_id,
                                   secret.get_secret_value() if secret is not None else "")
        try:
            response = send(self._http, "POST", self.token_url, source=self.source,
                            policy=self._retry, idempotent=True, data=self.grant.form(),
                            auth=auth, headers={"Accept": "application/json"})
        except PermanentError as exc:
            if exc.status in (400, 401, 403):
                raise AuthFailed("token endpoint refused the credentials", source=self.source,
                                 status=exc.status, request_id=exc.request_id) from exc
            raise
        return self._parse(response)

    def _parse(self, response: httpx.Response) -> Token:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) \
                or not body["access_token"]:
            raise PermanentError("token response has no access_token", source=self.source,
                                 status=response.status_code)
        try:
            expires_in = float(body.get("expires_in") or self.default_expires_in)
        except (TypeError, ValueError):
            expires_in = self.default_expires_in
        token_type = str(body.get("token_type") or "Bearer")
        if token_type.lower() == "bearer":
            token_type = "Bearer"
        now = self._clock()
        # refresh ahead of expiry, but never more than half a short-lived token's life
        margin = min(self.refresh_margin, expires_in / 2)
        return Token(body["access_token"], now + expires_in, now + expires_in - margin,
                     token_type)
