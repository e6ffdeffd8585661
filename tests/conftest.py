"""Shared fixtures: service URLs (PostgreSQL, Redis), a fresh database per test, Settings."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from hub.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"  # a Redis DB number reserved for tests

MARKERS = {
    "postgres": "needs the local PostgreSQL server",
    "redis": "needs the local Redis server",
    "slow": "end-to-end tests that start processes",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register our markers unless pyproject.toml already does."""
    known = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, help_text in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {help_text}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a service fixture, so ``-m "not postgres"`` deselects them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)
        if "redis_url" in names:
            item.add_marker(pytest.mark.redis)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(what: str, url: str, exc: BaseException) -> None:
    """Fail in CI (the service must be there), skip on a developer machine."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"{what} not reachable at {url}: {type(exc).__name__}: {detail}"
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the developer's MSPHUB_* variables (not MSPHUB_TEST_*) and cached settings out."""
    for name in list(os.environ):
        if name.startswith("MSPHUB_") and not name.startswith("MSPHUB_TEST_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL database (``MSPHUB_TEST_DATABASE_URL``).

    Checked once per session. Unreachable: the test fails when ``CI=true``, else skips.
    Tests that create tables should use ``db_url`` instead, which isolates them.
    """
    url = os.environ.get("MSPHUB_TEST_DATABASE_URL") or DEFAULT_PG_URL
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any driver/network error means "not available"
        _unavailable("PostgreSQL", url, exc)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def _redis_server() -> str:
    url = os.environ.get("MSPHUB_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # any connection error means "not available"
        _unavailable("Redis", url, exc)
    finally:
        client.close()
    return url


@pytest.fixture
def redis_url(_redis_server: str) -> Iterator[str]:
    """URL of the test Redis database (``MSPHUB_TEST_REDIS_URL``, default DB 15), emptied.

    The database is flushed before the test, so queues and rate limiters start clean.
    Unreachable: the test fails when ``CI=true``, else skips.
    """
    import redis

    client = redis.Redis.from_url(_redis_server)
    try:
        client.flushdb()
        yield _redis_server
    finally:
        client.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test; the test runs once per backend.

    - sqlite: a new file in ``tmp_path``.
    - postgres: a new schema ``t_<hex>`` in the test database, selected through the
      URL (``?options=-csearch_path%3Dt_<hex>``), so unqualified names land in it.
      At teardown, connections the test left open are closed and the schema is
      dropped with CASCADE.

    Note: the PostgreSQL URL contains ``%``; escape it as ``%%`` before putting it in
    a ConfigParser-based config such as Alembic's ``set_main_option``.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'test.db').as_posix()}"
        return

    base = request.getfixturevalue("pg_url")
    schema = f"t_{uuid.uuid4().hex}"
    admin = sa.create_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    # application_name lets teardown find (and end) connections the test leaked.
    url = sa.make_url(base).update_query_dict(
        {"options": f"-csearch_path={schema}", "application_name": schema}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema},
            )
            # Bounded, so a lock nobody can end turns into an error rather than a hang.
            conn.execute(sa.text("SET lock_timeout = '30s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with every directory under ``tmp_path`` and no .env or MSPHUB_* input.

    ``config/``, ``mappings/`` and ``playbooks/`` are copies of the repository's
    (empty directories where the repository has none), so a test may edit them freely.
    The database is SQLite in ``tmp_path/data``; Redis is unset (in-process workers).
    """
    dirs: dict[str, Path] = {}
    for name in ("config", "mappings", "playbooks"):
        target = tmp_path / name
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir()
        dirs[name] = target
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'msphub.db').as_posix()}",
        redis_url=None,
        config_dir=dirs["config"],
        mappings_dir=dirs["mappings"],
        playbooks_dir=dirs["playbooks"],
        secret_key="test-secret-key",
        log_format="console",
        env="development",
    )
