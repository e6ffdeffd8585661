"""Upgrading a database the previous release made (tests/store/fixtures/release-0002.sqlite,
written by commit 8c79b9f's own code): every client key becomes a hub client linked to the
source that produced it, every run is kept, and the audit chain still verifies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.core.events import ClientRef
from hub.services.directory import ClientDirectory
from hub.store import audit
from hub.store.db import make_engine, make_sessionmaker, transaction
from hub.store.migrate import current_revision, head_revision, upgrade
from hub.store.models import Client, InboxEvent, Run

FIXTURE = Path(__file__).parent / "fixtures" / "release-0002.sqlite"
# tables of revision 0002, parents before children
TABLES = ("clients", "playbook_versions", "runs", "run_steps", "audit_entries", "audit_head",
          "api_tokens", "inbox_events", "outbox_notes", "pending_evidence", "source_cursors")


@pytest.fixture
def old_database(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """The previous release's database, on this test's backend, not yet upgraded."""
    if db_url.startswith("sqlite"):
        target = Path(sa.make_url(db_url).database or "")
        shutil.copy(FIXTURE, target)
        engine = make_engine(db_url)
    else:
        engine = make_engine(db_url)
        upgrade(engine, "0002")
        copy = tmp_path / "release-0002.sqlite"  # opening a file sets pragmas: keep ours intact
        shutil.copy(FIXTURE, copy)
        _copy_rows(make_engine(f"sqlite:///{copy}"), engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _copy_rows(source: Engine, target: Engine) -> None:
    """Copy every row of the 0002 tables, keeping ids (then move PostgreSQL's sequences)."""
    src_meta, dst_meta = sa.MetaData(), sa.MetaData()
    src_meta.reflect(source, only=TABLES)
    dst_meta.reflect(target, only=TABLES)
    with source.connect() as read, target.begin() as write:
        for name in TABLES:
            dst = dst_meta.tables[name]
            rows = [dict(r._mapping) for r in read.execute(sa.select(src_meta.tables[name]))]
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, datetime) and value.tzinfo is None:
                        row[key] = value.replace(tzinfo=UTC)  # SQLite keeps UTC naive
            if rows:
                write.execute(dst.insert(), rows)
            if "id" in dst.c and rows:
                write.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT MAX(id) FROM {name}))"))
    source.dispose()


def test_the_previous_release_upgrades_and_its_audit_chain_still_verifies(
        old_database: Engine) -> None:
    """Runs, clients and the chain survive; each client is linked to its source."""
    sessions = make_sessionmaker(old_database)
    # Given the previous release's database with a valid chain
    assert current_revision(old_database) == "0002"
    with sessions() as s:
        before = audit.verify(s)
        assert before.ok and before.checked == 6
        runs_before = s.execute(sa.text("SELECT id, playbook_id, status, client_id FROM runs "
                                        "ORDER BY id")).all()
    # When it is upgraded
    upgrade(old_database)
    assert current_revision(old_database) == head_revision(old_database)
    # Then every run is kept, for the same client, and the chain still verifies
    with sessions() as s:
        assert audit.verify(s).ok
        runs_after = [(r.id, r.playbook_id, r.status, r.client_id)
                      for r in s.execute(sa.select(Run).order_by(Run.id)).unique().scalars()]
        assert runs_after == [tuple(r) for r in runs_before]
        clients = {c.key: c for c in s.execute(sa.select(Client)).scalars()}
        assert set(clients) == {"ACME", "19300", "INITECH"}
        links = {k: [(x.source, x.object_type, x.vendor_id, x.created_by) for x in c.links]
                 for k, c in clients.items()}
        # ACME from its run's ticket, 19300 from its agreement's origin; INITECH was
        # launched by hand, so nothing tells which tool it came from
        assert links == {"ACME": [("cw-prod", "company", "ACME", "migration")],
                         "19300": [("cw-prod", "company", "19300", "migration")],
                         "INITECH": []}
        assert all(c.tags == [] and not c.provisional for c in clients.values())
        events = {e.client_key: (e.client_type, e.hub_client)
                  for e in s.execute(sa.select(InboxEvent)).scalars()}
        assert events == {"ACME": ("company", "ACME"), "19300": ("company", "19300")}
    # And the same vendor records resolve to those clients from now on
    directory = ClientDirectory(clock=lambda: datetime.now(UTC))
    with transaction(sessions) as s:
        assert directory.resolve(s, "cw-prod", ClientRef(id="ACME")).key == "ACME"
        directory.link(s, "INITECH", "datto", "site", "S-1", by="user:admin")
    with sessions() as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 7
