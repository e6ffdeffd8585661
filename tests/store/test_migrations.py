"""Alembic migrations on SQLite and PostgreSQL: they build exactly the schema the models declare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from hub.store.db import make_engine
from hub.store.migrate import alembic_config, current_revision, head_revision, upgrade
from hub.store.models import Base

MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine over the fresh, empty test database (not migrated)."""
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, indexes and unique constraints, as the database reports them."""
    inspector = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"])
                        for c in inspector.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"]))
                              for i in inspector.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"])
                             for u in inspector.get_unique_constraints(table)),
        }
    return out


def test_upgrade_from_empty_creates_every_model_table(engine: Engine) -> None:
    """An empty database gets every table of Base.metadata plus Alembic's version table."""
    # Given an empty database that was never migrated
    assert sa.inspect(engine).get_table_names() == []
    assert current_revision(engine) is None
    # When it is upgraded
    upgrade(engine)
    # Then every model table exists
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == MODEL_TABLES | {"alembic_version"}
    core = {"clients", "playbook_versions", "runs", "run_steps", "audit_entries",
            "audit_head", "api_tokens"}
    assert core <= MODEL_TABLES


def test_database_is_at_head_after_upgrade(engine: Engine) -> None:
    """After upgrade, the current revision is the newest shipped one."""
    upgrade(engine)
    head = head_revision(engine)
    assert head is not None
    assert current_revision(engine) == head


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    """A second upgrade changes neither the schema, the revision nor the data."""
    # Given a migrated database holding a row
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO audit_head (id, last_id, last_hash) "
                             "VALUES (1, 0, :h)"), {"h": "0" * 64})
    before = schema_of(engine)
    revision = current_revision(engine)
    # When it is upgraded again
    upgrade(engine)
    # Then nothing changed
    assert schema_of(engine) == before
    assert current_revision(engine) == revision
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT last_id FROM audit_head")).scalar_one() == 0


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    """Autogenerate finds nothing to do: migrations and models describe the same schema."""
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    # No type-representation noise to filter on either backend: UTCDateTime is compared
    # through its impl, DateTime(timezone=True), which is what the migration creates
    # (TIMESTAMP WITH TIME ZONE on PostgreSQL, DATETIME on SQLite), and JSONType is
    # JSON().with_variant(JSONB(), "postgresql") in both the models and the migration,
    # so PostgreSQL reflects JSONB and SQLite JSON exactly as declared. Any entry here is
    # a real drift: a model change without a migration (or the reverse).
    assert diff == []


def test_named_constraints_exist_after_migration(engine: Engine) -> None:
    """The constraints the code relies on by name (uq_run_ticket) are created."""
    upgrade(engine)
    inspector = sa.inspect(engine)
    uniques = {u["name"]: tuple(u["column_names"])
               for u in inspector.get_unique_constraints("runs")}
    assert uniques.get("uq_run_ticket") == ("ticket_source", "ticket_id", "playbook_id")
    indexes = {i["name"] for i in inspector.get_indexes("run_steps")}
    assert {"ix_run_steps_assignee_status", "ix_run_steps_due"} <= indexes


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    engine: Engine,
) -> None:
    """Migrations are reversible: down to base leaves only alembic_version, up rebuilds all."""
    # Given a migrated database
    upgrade(engine)
    config = alembic_config(engine)
    # When it is downgraded to base
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    # Then no model table is left
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None
    # And upgrading again restores the full schema
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == MODEL_TABLES | {"alembic_version"}
