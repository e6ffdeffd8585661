"""The shared database fixtures give each test its own empty database on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

_seen: dict[str, str] = {}


def _table_names(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _schema_of(url: str) -> str:
    options = str(sa.make_url(url).query["options"])  # "-csearch_path=t_<hex>"
    return options.split("=", 1)[1]


def test_db_url_starts_empty_and_accepts_tables(db_url: str) -> None:
    """A fresh database has no tables; a table created through the URL is visible through it."""
    # Given a fresh database
    assert _table_names(db_url) == []
    # When a table is created and a row written through a plain create_engine
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(sa.text("INSERT INTO probe (id, name) VALUES (1, 'first')"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name FROM probe")).scalars().all()
    finally:
        engine.dispose()
    # Then it is there
    assert rows == ["first"]
    assert _table_names(db_url) == ["probe"]
    _seen[db_url.split(":", 1)[0]] = db_url


def test_db_url_is_isolated_from_the_previous_test(db_url: str) -> None:
    """The table created by the previous test is not in this test's database."""
    backend = db_url.split(":", 1)[0]
    assert db_url != _seen.get(backend)
    assert _table_names(db_url) == []


def test_postgres_schema_is_dropped_after_the_test(pg_url: str) -> None:
    """No schema created by ``db_url`` for an earlier test is left behind."""
    names = [_schema_of(url) for url in _seen.values() if url.startswith("postgres")]
    query = sa.text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:names)")
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            left = conn.execute(query, {"names": names}).scalars().all()
    finally:
        engine.dispose()
    assert left == []


def test_leaked_connection_does_not_block_teardown(db_url: str) -> None:
    """A connection left open inside a transaction is ended by teardown, not waited for."""
    # No reset on return: the later garbage collection of this connection must not try a
    # ROLLBACK on a connection teardown has already ended (noise, not a failure).
    engine = sa.create_engine(db_url, poolclass=NullPool, pool_reset_on_return=None)
    conn = engine.connect()
    conn.execute(sa.text("CREATE TABLE held (id INTEGER)"))
    # Deliberately neither committed nor closed: teardown must still drop the schema.
    assert conn.in_transaction()


def test_redis_url_is_an_empty_test_database(redis_url: str) -> None:
    """The Redis fixture selects a dedicated DB number and hands it over empty."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.connection_pool.connection_kwargs.get("db", 0) != 0
        assert client.dbsize() == 0
        client.set("msphub:probe", "1")
        assert client.get("msphub:probe") == b"1"
    finally:
        client.close()
