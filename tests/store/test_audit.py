"""The audit trail on SQLite and PostgreSQL: a SHA-256 chain whose tampering is detected."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.core.checklists.engine import Fact
from hub.store import audit
from hub.store.audit import GENESIS, VerifyResult, entry_hash
from hub.store.db import make_sessionmaker, transaction
from hub.store.models import AuditEntry, AuditHead

T0 = datetime(2025, 6, 13, 19, 0, 0, 123456, tzinfo=UTC)
ENTRIES = AuditEntry.__table__
HEAD = AuditHead.__table__


def facts(n: int, *, start: int = 0) -> list[Fact]:
    """``n`` distinct facts a minute apart."""
    return [
        Fact(f"action{i}", f"user:u{i}", T0 + timedelta(minutes=i), step_id=f"s{i}",
             data={"i": i, "nested": {"evidence": f"proof {i}", "list": [1, "two", None]}})
        for i in range(start, start + n)
    ]


@pytest.fixture
def sessions(migrated_engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(migrated_engine)


@pytest.fixture
def chain(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Six entries appended in three transactions (runs 1, 2 and none)."""
    with transaction(sessions) as session:
        audit.append(session, facts(2), run_id=1, event_id=10)
    with transaction(sessions) as session:
        audit.append(session, facts(3, start=2), run_id=2)
    with transaction(sessions) as session:
        audit.append(session, facts(1, start=5), run_id=None)
    return sessions


def verify(sessions: sessionmaker[Session], **kwargs: Any) -> VerifyResult:
    with sessions() as session:
        return audit.verify(session, **kwargs)


def tamper(engine: Engine, statement: Any) -> None:
    """Change the table behind the application's back, as an attacker with SQL access would."""
    with engine.begin() as conn:
        conn.execute(statement)


def rows(sessions: sessionmaker[Session]) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())


# ---------------------------------------------------------------------------- the chain


def test_facts_are_appended_with_a_chained_hash(chain: sessionmaker[Session]) -> None:
    """Ids are 1..n; each entry links to the previous hash and hashes its own content."""
    entries = rows(chain)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for e in entries:
        assert e.hash == entry_hash(seq=e.id, at=e.at, actor=e.actor, action=e.action,
                                    run_id=e.run_id, step_id=e.step_id, event_id=e.event_id,
                                    data=e.data, prev_hash=e.prev_hash)
        assert len(e.hash) == 64
    assert [(e.run_id, e.event_id) for e in entries] == [
        (1, 10), (1, 10), (2, None), (2, None), (2, None), (None, None)]
    assert entries[3].data == {"i": 3, "nested": {"evidence": "proof 3",
                                                  "list": [1, "two", None]}}
    assert entries[3].at == T0 + timedelta(minutes=3)
    with chain() as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        assert (head.last_id, head.last_hash) == (6, entries[-1].hash)


def test_verify_is_ok_on_an_intact_chain(chain: sessionmaker[Session]) -> None:
    """An untouched chain verifies, in one batch or many."""
    assert verify(chain) == VerifyResult(ok=True, checked=6)
    assert verify(chain, batch=4) == VerifyResult(ok=True, checked=6)
    assert verify(chain, batch=1) == VerifyResult(ok=True, checked=6)


def test_verify_is_ok_on_an_empty_trail(sessions: sessionmaker[Session]) -> None:
    """No entries yet: nothing to break."""
    assert verify(sessions) == VerifyResult(ok=True, checked=0)


def test_a_rolled_back_append_leaves_no_gap(chain: sessionmaker[Session]) -> None:
    """Facts of a failed transaction are not kept, and the next append continues the chain."""
    # Given an append inside a transaction that fails
    with pytest.raises(RuntimeError), transaction(chain) as session:
        audit.append(session, facts(2, start=6), run_id=3)
        raise RuntimeError("the state change failed")
    # When another append follows
    with transaction(chain) as session:
        added = audit.append(session, facts(1, start=8), run_id=3)
    # Then it takes the next id and the chain verifies
    assert [e.id for e in added] == [7]
    assert verify(chain) == VerifyResult(ok=True, checked=7)


def test_hash_covers_every_field() -> None:
    """Changing any hashed field changes the hash."""
    base: dict[str, Any] = dict(seq=1, at=T0, actor="user:a", action="x", run_id=1,
                                step_id="s", event_id=None, data={"k": 1}, prev_hash=GENESIS)
    changes: dict[str, Any] = dict(seq=2, at=T0 + timedelta(microseconds=1), actor="user:b",
                                   action="y", run_id=2, step_id="t", event_id=5,
                                   data={"k": 2}, prev_hash="1" * 64)
    original = entry_hash(**base)
    for name, value in changes.items():
        assert entry_hash(**{**base, name: value}) != original, name


# ---------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("values", "entry"),
    [
        pytest.param({"data": {"i": 3, "nested": {"evidence": "forged"}}}, 4, id="data"),
        pytest.param({"actor": "user:mallory"}, 2, id="actor"),
        pytest.param({"at": T0 + timedelta(days=1)}, 5, id="at"),
        pytest.param({"action": "step_done"}, 1, id="action"),
        pytest.param({"run_id": 99}, 3, id="run_id"),
        pytest.param({"step_id": "other"}, 6, id="step_id-last"),
        pytest.param({"event_id": 11}, 1, id="event_id"),
    ],
)
def test_an_updated_field_is_detected_naming_the_entry(
    chain: sessionmaker[Session], migrated_engine: Engine, values: dict[str, Any], entry: int
) -> None:
    """Editing any field of a row is reported as 'content was altered' on that row."""
    # When one row is changed in the database
    tamper(migrated_engine, update(ENTRIES).where(ENTRIES.c.id == entry).values(**values))
    # Then verify names it
    result = verify(chain)
    assert (result.ok, result.entry_id, result.problem) == (False, entry, "content was altered")
    assert result.checked == entry - 1


def test_a_deleted_middle_entry_is_reported_missing(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """Removing a row from the middle is reported as that entry missing."""
    tamper(migrated_engine, delete(ENTRIES).where(ENTRIES.c.id == 3))
    result = verify(chain)
    assert (result.ok, result.entry_id, result.checked) == (False, 3, 2)
    assert result.problem == "entry 3 is missing (removed)"


@pytest.mark.parametrize("removed", [1, 2, 6], ids=["last", "last-two", "all"])
def test_deleted_trailing_entries_are_reported_via_the_head(
    chain: sessionmaker[Session], migrated_engine: Engine, removed: int
) -> None:
    """Removing the newest rows leaves a valid-looking chain; the head row exposes it."""
    kept = 6 - removed
    tamper(migrated_engine, delete(ENTRIES).where(ENTRIES.c.id > kept))
    result = verify(chain)
    assert (result.ok, result.entry_id, result.checked) == (False, 6, kept)
    assert result.problem == (f"the chain ends at entry {kept} but entry 6 was recorded "
                              "(entries removed from the end)")


def test_a_forged_entry_with_a_new_id_is_reported(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """A row inserted after the last one, not linked to it, is named."""
    tamper(migrated_engine, insert(ENTRIES).values(
        id=7, at=T0, actor="user:mallory", action="step_done", run_id=1, step_id="s0",
        event_id=None, data={}, prev_hash="f" * 64, hash="e" * 64))
    result = verify(chain)
    assert (result.ok, result.entry_id, result.checked) == (False, 7, 6)
    assert result.problem == "does not link to the entry before it (inserted or removed)"


def _well_forged_row(sessions: sessionmaker[Session], entry_id: int) -> dict[str, Any]:
    """A row an attacker who knows the algorithm would insert: correctly linked and hashed."""
    prev = rows(sessions)[-1].hash
    row: dict[str, Any] = dict(at=T0, actor="user:mallory", action="step_done", run_id=1,
                               step_id="s0", event_id=None, data={}, prev_hash=prev)
    row["hash"] = entry_hash(seq=entry_id, **row)
    return {"id": entry_id, **row}


def test_a_correctly_chained_forged_entry_is_still_reported_via_the_head(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """Even a forged row that links and hashes correctly disagrees with the head row."""
    tamper(migrated_engine, insert(ENTRIES).values(**_well_forged_row(chain, 7)))
    result = verify(chain)
    assert result.ok is False
    assert result.checked == 7


def test_a_correctly_chained_forged_entry_is_named(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """The entry past the recorded head is named as inserted."""
    tamper(migrated_engine, insert(ENTRIES).values(**_well_forged_row(chain, 7)))
    result = verify(chain)
    assert result.entry_id == 7
    assert result.problem is not None and "inserted" in result.problem


@pytest.mark.parametrize("forged_id", [0, -1])
def test_a_forged_entry_below_the_first_id_is_reported(
    chain: sessionmaker[Session], migrated_engine: Engine, forged_id: int
) -> None:
    """A row slipped in before entry 1 breaks the chain too."""
    tamper(migrated_engine, insert(ENTRIES).values(
        id=forged_id, at=T0, actor="user:mallory", action="launched", run_id=None,
        step_id=None, event_id=None, data={}, prev_hash=GENESIS, hash="e" * 64))
    assert verify(chain).ok is False


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """Rewriting a row's own hash after editing it hides the edit there, not at the next row."""
    # Given entry 3's data is changed and its hash recomputed to match
    entry = rows(chain)[2]
    forged = {"i": 3, "evidence": "rewritten"}
    new_hash = entry_hash(seq=3, at=entry.at, actor=entry.actor, action=entry.action,
                          run_id=entry.run_id, step_id=entry.step_id,
                          event_id=entry.event_id, data=forged, prev_hash=entry.prev_hash)
    tamper(migrated_engine, update(ENTRIES).where(ENTRIES.c.id == 3)
           .values(data=forged, hash=new_hash))
    # When the chain is verified
    result = verify(chain)
    # Then entry 3 checks out, and entry 4 no longer links to it
    assert (result.ok, result.entry_id, result.checked) == (False, 4, 3)
    assert result.problem == "does not link to the entry before it (inserted or removed)"


def test_rewriting_the_last_entry_and_its_hash_is_caught_by_the_head(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """With no next row to break, the head's recorded hash exposes the rewritten last entry."""
    entry = rows(chain)[-1]
    new_hash = entry_hash(seq=6, at=entry.at, actor="user:mallory", action=entry.action,
                          run_id=entry.run_id, step_id=entry.step_id,
                          event_id=entry.event_id, data=entry.data, prev_hash=entry.prev_hash)
    tamper(migrated_engine, update(ENTRIES).where(ENTRIES.c.id == 6)
           .values(actor="user:mallory", hash=new_hash))
    result = verify(chain)
    assert (result.ok, result.entry_id, result.checked) == (False, 6, 6)


def test_a_tampered_head_is_reported(
    chain: sessionmaker[Session], migrated_engine: Engine
) -> None:
    """Moving the head back (to hide removed rows) without removing them is still caught."""
    tamper(migrated_engine, update(HEAD).values(last_id=4))
    result = verify(chain)
    # entries 5.. now lie beyond the recorded end: the first of them is named
    assert (result.ok, result.entry_id) == (False, 5)
    assert "head was rolled back" in (result.problem or "")


# ---------------------------------------------------------------------------- time zones


def test_a_fact_stamped_in_another_time_zone_verifies(sessions: sessionmaker[Session]) -> None:
    """Time stamps are normalised to UTC before hashing, whatever zone the caller used."""
    new_york = timezone(timedelta(hours=-4))
    with transaction(sessions) as session:
        audit.append(session, [Fact("launched", "user:erin", T0.astimezone(new_york))],
                     run_id=1)
    assert verify(sessions).ok
