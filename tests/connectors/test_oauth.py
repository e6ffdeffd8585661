"""OAuth2 flow: both grants, a shared cached token, refresh before expiry and on a 401."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
import redis
import respx
from pydantic import SecretStr
from structlog.testing import capture_logs

from connectors.base import AuthFailed, TransientError
from connectors.http import RetryPolicy, make_client, send
from connectors.oauth import (
    ClientCredentials,
    MemoryTokenStore,
    OAuth2Auth,
    PasswordGrant,
    RedisTokenStore,
    Token,
    make_token_store,
)

HOST = "https://acme.halo.test"
TOKEN_URL = f"{HOST}/auth/token"
NO_WAIT = RetryPolicy(sleep=lambda _s: None)


class Clock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _token_route(router: respx.MockRouter, *tokens: str, expires_in: int = 3600) -> respx.Route:
    answers = [httpx.Response(200, json={"token_type": "bearer", "access_token": t,
                                         "expires_in": expires_in}) for t in tokens]
    return router.post(TOKEN_URL, name="token").mock(side_effect=answers)


def _client(auth: OAuth2Auth) -> httpx.Client:
    return make_client(f"{HOST}/api", auth=auth, source="halo")


def _grant() -> ClientCredentials:
    return ClientCredentials(client_id="cid", client_secret=SecretStr("s3cret"), scope="all",
                             extra={"tenant": "acme"})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """respx blocks every unmocked call."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock


def test_client_credentials_token_is_fetched_once_and_sent_as_bearer(
    router: respx.MockRouter,
) -> None:
    """The token request carries the grant's fields; API calls reuse the cached token."""
    token = _token_route(router, "tok-1")
    api = router.get(f"{HOST}/api/Tickets").respond(json={"tickets": []})
    auth = OAuth2Auth(TOKEN_URL, _grant(), source="halo", retry=NO_WAIT)

    with _client(auth) as client:
        client.get("/Tickets")
        client.get("/Tickets")

    assert token.call_count == 1 and api.call_count == 2
    assert _form(token.calls[0].request) == {
        "grant_type": "client_credentials", "client_id": "cid", "client_secret": "s3cret",
        "scope": "all", "tenant": "acme"}
    assert all(c.request.headers["Authorization"] == "Bearer tok-1" for c in api.calls)


def test_password_grant_with_basic_client_auth(router: respx.MockRouter) -> None:
    """The password grant sends user and password; client credentials go as HTTP Basic."""
    token = _token_route(router, "tok-p")
    api = router.get(f"{HOST}/api/Sites").respond(json=[])
    grant = PasswordGrant(username="api-user", password=SecretStr("pw"), client_id="public",
                          client_secret=SecretStr("cs"), basic_auth=True)
    auth = OAuth2Auth(TOKEN_URL, grant, retry=NO_WAIT)

    with _client(auth) as client:
        client.get("/Sites")

    request = token.calls[0].request
    assert _form(request) == {"grant_type": "password", "username": "api-user",
                              "password": "pw"}
    assert request.headers["Authorization"] == httpx.BasicAuth("public", "cs")._auth_header
    assert api.calls[0].request.headers["Authorization"] == "Bearer tok-p"


def test_the_token_is_refreshed_before_it_expires(router: respx.MockRouter) -> None:
    """With 5 minutes left the next request fetches a new token first."""
    clock = Clock()
    token = _token_route(router, "tok-1", "tok-2")
    api = router.get(f"{HOST}/api/Tickets").respond(json=[])
    auth = OAuth2Auth(TOKEN_URL, _grant(), clock=clock, retry=NO_WAIT, refresh_margin=300)

    with _client(auth) as client:
        client.get("/Tickets")
        clock.now += 3299  # 301 s left: still fresh
        client.get("/Tickets")
        clock.now += 2  # 299 s left: refresh first
        client.get("/Tickets")

    assert token.call_count == 2
    sent = [c.request.headers["Authorization"] for c in api.calls]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_401_refreshes_once_and_retries_once(router: respx.MockRouter) -> None:
    """A token revoked early: one refresh, the request resent, and it succeeds."""
    token = _token_route(router, "revoked", "tok-2")
    api = router.get(f"{HOST}/api/Tickets").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=[])])
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT)

    with _client(auth) as client:
        response = send(client, "GET", "/Tickets", source="halo", policy=NO_WAIT)

    assert response.status_code == 200
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in api.calls] == [
        "Bearer revoked", "Bearer tok-2"]


def test_a_second_401_is_auth_failed(router: respx.MockRouter) -> None:
    """Refused again with a fresh token: AuthFailed, after exactly one refresh."""
    token = _token_route(router, "tok-1", "tok-2", "tok-3")
    api = router.get(f"{HOST}/api/Tickets").respond(401)
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT)

    with _client(auth) as client, pytest.raises(AuthFailed) as info:
        send(client, "GET", "/Tickets", source="halo", policy=NO_WAIT)

    assert info.value.status == 401
    assert token.call_count == 2 and api.call_count == 2


@pytest.mark.parametrize("status", [400, 401])
def test_refused_credentials_at_the_token_endpoint_are_auth_failed(
    router: respx.MockRouter, status: int
) -> None:
    """invalid_client / invalid_grant → AuthFailed; the API is never called."""
    router.post(TOKEN_URL).respond(status, json={"error": "invalid_client"})
    api = router.get(f"{HOST}/api/Tickets").respond(json=[])
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT)

    with _client(auth) as client, pytest.raises(AuthFailed):
        client.get("/Tickets")

    assert api.call_count == 0


def test_a_failing_token_endpoint_is_transient(router: respx.MockRouter) -> None:
    """5xx from the token endpoint is retried, then raised as TransientError."""
    token = router.post(TOKEN_URL).respond(503)
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT)

    with _client(auth) as client, pytest.raises(TransientError):
        client.get("/Tickets")

    assert token.call_count == NO_WAIT.max_attempts


def test_tokens_and_secrets_are_never_logged(router: respx.MockRouter) -> None:
    """Neither the access token nor the client secret appears in any log line or repr."""
    _token_route(router, "tok-very-secret")
    router.get(f"{HOST}/api/Tickets").respond(json=[])
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT)

    with capture_logs() as logs, _client(auth) as client:
        client.get("/Tickets")

    assert any(e["event"] == "oauth_token_refreshed" for e in logs)
    assert "tok-very-secret" not in repr(logs) and "s3cret" not in repr(logs)
    assert "tok-very-secret" not in repr(auth.store.get())


class CountingStore(MemoryTokenStore):
    """A memory store that lets the test know when ``n`` threads have looked for a token."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.lookups = 0
        self.all_looked = threading.Event()
        self._count = threading.Lock()

    def get(self) -> Token | None:
        with self._count:
            self.lookups += 1
            if self.lookups >= self.n:
                self.all_looked.set()
        return super().get()


def test_concurrent_requests_refresh_the_token_once(router: respx.MockRouter) -> None:
    """Eight threads needing a token at once cause one token request, not eight."""
    # Given a token endpoint that answers only after every thread has asked for a token
    store = CountingStore(8)
    calls: list[int] = []

    def issue(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        store.all_looked.wait(timeout=10)
        return httpx.Response(200, json={"access_token": f"tok-{len(calls)}",
                                         "expires_in": 3600})

    router.post(TOKEN_URL).mock(side_effect=issue)
    api = router.get(f"{HOST}/api/Tickets").respond(json=[])
    auth = OAuth2Auth(TOKEN_URL, _grant(), store=store, retry=NO_WAIT)
    client = _client(auth)

    # When eight threads send at once
    threads = [threading.Thread(target=client.get, args=("/Tickets",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    # Then one token was fetched and used by all
    client.close()
    assert calls == [1]
    assert api.call_count == 8
    assert {c.request.headers["Authorization"] for c in api.calls} == {"Bearer tok-1"}


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the flushed test database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.redis
def test_workers_share_one_token_through_redis(
    router: respx.MockRouter, redis_client: redis.Redis
) -> None:
    """A second worker (its own auth object) uses the token the first one fetched."""
    token = _token_route(router, "tok-shared")
    api = router.get(f"{HOST}/api/Tickets").respond(json=[])
    workers = [OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT,
                          store=make_token_store("halo", redis_client=redis_client,
                                                 namespace="t"))
               for _ in range(2)]

    for auth in workers:
        with _client(auth) as client:
            client.get("/Tickets")

    assert token.call_count == 1
    assert {c.request.headers["Authorization"] for c in api.calls} == {"Bearer tok-shared"}
    assert 3000 < int(redis_client.pttl("t:oauth:halo")) <= 3_600_000


@pytest.mark.redis
def test_a_worker_waits_for_the_peer_that_is_refreshing(
    router: respx.MockRouter, redis_client: redis.Redis
) -> None:
    """While another worker holds the refresh lock, this one waits for its token instead
    of fetching a second one."""
    # Given another worker in the middle of a refresh
    token = _token_route(router, "mine")
    api = router.get(f"{HOST}/api/Tickets").respond(json=[])
    peer = RedisTokenStore(redis_client, "t:oauth:halo")
    assert peer.lock()
    auth = OAuth2Auth(TOKEN_URL, _grant(), retry=NO_WAIT,
                      store=RedisTokenStore(redis_client, "t:oauth:halo"))
    client = _client(auth)
    worker = threading.Thread(target=client.get, args=("/Tickets",))
    worker.start()

    # When the peer stores its token and releases the lock
    clock = Clock()
    peer.put(Token("theirs", expires_at=clock.now + 10**10, refresh_at=clock.now + 10**9),
             3600)
    peer.unlock()
    worker.join(timeout=20)
    client.close()

    # Then this worker used the peer's token and fetched none
    assert not worker.is_alive()
    assert token.call_count == 0
    assert api.calls[0].request.headers["Authorization"] == "Bearer theirs"
