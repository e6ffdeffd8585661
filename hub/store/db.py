"""Database engines and sessions: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

WRITE_OPTION = "msphub_write"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings msphub relies on.

    SQLite: WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` so write
    transactions serialise up front instead of failing on upgrade (the audit chain
    reads its head and appends in one transaction). PostgreSQL: pre-ping, a pool.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Write transactions take the lock up front (they read, then write: a deferred
            # upgrade could fail under WAL); reads stay deferred and never wait on writers.
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    # No pre-ping: it costs a round trip per checkout. A connection that died with a
    # server restart fails one unit of work, which the actors retry.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work that writes: commit on success, roll back on any error.

    Use it for every change; plain ``factory()`` sessions are for reading (on SQLite
    they do not take the write lock).
    """
    with factory() as session, session.begin():
        session.connection(execution_options={WRITE_OPTION: True})
        yield session


def insert_ignore_stmt(session: Session, model: Any, values: dict[str, Any],
                       conflict: list[str]) -> Any:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING`` for this session's dialect."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict)


def insert_ignore(session: Session, model: Any, values: dict[str, Any],
                  conflict: list[str]) -> None:
    """Insert a row unless one with the same ``conflict`` columns exists (SQLite, PG)."""
    session.execute(insert_ignore_stmt(session, model, values, conflict))
