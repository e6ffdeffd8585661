"""Fixtures for the end-to-end tests: the sandbox PSA and a factory of hub deployments."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import FaultProxy, Hub, HubOptions, Psa, postgres_schema


@pytest.fixture
def psa() -> Iterator[Psa]:
    """A ConnectWise sandbox on 127.0.0.1 (in-process), stopped at teardown."""
    sandbox = Psa().start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


E2E_REDIS_DB = 13


@pytest.fixture
def e2e_redis_url(_redis_server: str) -> Iterator[str]:
    """A Redis database of its own for the hub processes (``MSPHUB_TEST_E2E_REDIS_URL``,
    default: the test Redis server, DB 13), emptied before and after the test.

    Not ``redis_url`` (DB 15): every test using that fixture flushes DB 15 when it
    starts, so a test session running beside this one would wipe the queues of the
    worker processes mid-test (seen: a crash test's requeued messages vanished), and
    flushing it here would do the same to theirs. Skips (fails in CI) like ``redis_url``
    when Redis is not reachable.
    """
    import redis

    url = os.environ.get("MSPHUB_TEST_E2E_REDIS_URL") or urlsplit(_redis_server)._replace(
        path=f"/{E2E_REDIS_DB}").geturl()
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def proxy(psa: Psa) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the sandbox; callbacks name it as their origin."""
    p = FaultProxy(psa.url).start()
    psa.cw.base_url = p.url  # callbacks' key_url must be on the site the hub talks to
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def make_hub(psa: Psa, tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[Callable[..., Hub]]:
    """``make_hub(postgres=False, **HubOptions)`` → a configured (not yet started) Hub.

    With ``postgres=True`` the hub gets a fresh schema in the test database. Every
    process a hub started is stopped at teardown, before its schema is dropped.
    """
    made: list[Hub] = []
    with ExitStack() as stack:
        def make(*, postgres: bool = False, **options: object) -> Hub:
            opts = HubOptions(**options)  # type: ignore[arg-type]
            if postgres:
                opts.database_url = stack.enter_context(
                    postgres_schema(request.getfixturevalue("pg_url")))
            hub = Hub(tmp_path / f"hub{len(made)}", psa, opts)
            made.append(hub)
            stack.callback(hub.stop)
            return hub

        yield make
