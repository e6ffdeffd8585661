"""An audit chain an insider cannot rewrite (issue 14, item 4): keyed entries, signed
checkpoints outside the database, and run/step state checked against the chain's facts.

Each rewrite of the issue is tried as someone with SQL access but without the key would:
delete the last entries and roll the head back; alter an entry and recompute the rest;
empty both tables; set a step to done directly."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.runtime.root import build_context
from hub.store import audit
from hub.store.db import make_engine, transaction
from hub.store.migrate import upgrade
from hub.store.models import AuditEntry, AuditHead, RunStep
from tests.store.conftest import Hub

KEY = "k" * 40
FIXTURE = Path(__file__).parent / "fixtures" / "release-0002.sqlite"


@pytest.fixture
def keyed(hub: Hub) -> Hub:
    """The hub with an audit key and a checkpoint file under data_dir."""
    settings = hub.settings.model_copy(update={"audit_key": SecretStr(KEY)})
    ctx = build_context(settings, clock=hub.clock, engine=hub.ctx.engine)
    return Hub(ctx=ctx, clock=hub.clock, playbooks_dir=hub.playbooks_dir, settings=settings)


def activity(hub: Hub) -> int:
    """Launch a run and complete two steps (three commits); returns the run id."""
    with transaction(hub.ctx.sessions) as session:
        run = hub.ctx.runs.launch(session, "new-starter", client="ACME",
                                  inputs={"starter": "Jo"}, by="user:max")
    for step in ("intake", "review"):
        with transaction(hub.ctx.sessions) as session:
            hub.ctx.runs.complete(session, run.id, step, by="user:alice", evidence="ok")
    return run.id


def check(hub: Hub, *, key: str | None = KEY, state: bool = True,
          extra: list[audit.Checkpoint] | None = None) -> audit.VerifyResult:
    """Verify as `msphub audit verify` does: key, checkpoint file, state."""
    found = audit.read_checkpoints(hub.settings.audit_checkpoints) + (extra or [])
    with hub.ctx.sessions() as session:
        return audit.verify(session, key=key.encode() if key else None, checkpoints=found,
                            check_state=state)


def sql(hub: Hub, *statements: sa.Executable) -> None:
    """Change tables behind the application's back."""
    with hub.ctx.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def test_keyed_chain_with_checkpoints_verifies(keyed: Hub) -> None:
    """Keyed entries, one signed checkpoint per commit, state agreeing: OK."""
    activity(keyed)

    result = check(keyed)

    assert result.ok, result
    lines = keyed.settings.audit_checkpoints.read_text().splitlines()
    assert len(lines) == 3
    assert all('"mac":"' in line for line in lines)


def test_keyed_entries_do_not_verify_without_the_key(keyed: Hub) -> None:
    """A keyed chain is not plain SHA-256: without the key it does not verify."""
    activity(keyed)

    assert not check(keyed, key=None).ok


def test_deleting_the_last_entries_and_rolling_the_head_back_is_caught(keyed: Hub) -> None:
    """Rewrite 1: drop trailing entries and point the head at the new end."""
    activity(keyed)
    with keyed.ctx.sessions() as session:
        last = session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalars()
        entries = list(last)
    keep = entries[1]  # drop the newest entry only
    sql(keyed, delete(AuditEntry).where(AuditEntry.id > keep.id),
        update(AuditHead).values(last_id=keep.id, last_hash=keep.hash))

    result = check(keyed, state=False)  # the checkpoints alone catch it

    assert not result.ok
    assert "chain ends at entry" in (result.problem or "")


def test_altering_an_entry_and_recomputing_the_rest_is_caught(keyed: Hub) -> None:
    """Rewrite 2: edit entry 2 and recompute every later hash (without the key)."""
    activity(keyed)
    with keyed.ctx.sessions() as session:
        entries = list(session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())
    prev = entries[0].hash
    statements: list[sa.Executable] = []
    for entry in entries[1:]:
        actor = "user:mallory" if entry.id == 2 else entry.actor
        digest = audit.entry_hash(seq=entry.id, at=entry.at, actor=actor, action=entry.action,
                                  run_id=entry.run_id, step_id=entry.step_id,
                                  event_id=entry.event_id, data=entry.data, prev_hash=prev)
        statements.append(update(AuditEntry).where(AuditEntry.id == entry.id).values(
            actor=actor, prev_hash=prev, hash=digest))
        prev = digest
    statements.append(update(AuditHead).values(last_hash=prev))
    sql(keyed, *statements)

    result = check(keyed, state=False)

    assert not result.ok
    assert result.entry_id == 2
    assert "not keyed" in (result.problem or "")


def test_recomputing_the_whole_chain_without_the_key_is_caught_by_a_checkpoint(
        keyed: Hub) -> None:
    """Rewrite 2b: recompute every entry from the first, plain: the checkpoints differ."""
    activity(keyed)
    with keyed.ctx.sessions() as session:
        entries = list(session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())
    prev, statements = audit.GENESIS, []
    for entry in entries:
        digest = audit.entry_hash(seq=entry.id, at=entry.at, actor=entry.actor,
                                  action=entry.action, run_id=entry.run_id,
                                  step_id=entry.step_id, event_id=entry.event_id,
                                  data=entry.data, prev_hash=prev)
        statements.append(update(AuditEntry).where(AuditEntry.id == entry.id).values(
            prev_hash=prev, hash=digest))
        prev = digest
    sql(keyed, *statements, update(AuditHead).values(last_hash=prev))

    result = check(keyed, state=False)

    assert not result.ok
    assert "differs from the" in (result.problem or "")


def test_emptying_both_tables_is_caught(keyed: Hub) -> None:
    """Rewrite 3: empty the entries and the head ("OK … 0 entries" before)."""
    activity(keyed)
    sql(keyed, delete(AuditEntry), delete(AuditHead))

    by_checkpoints = check(keyed, state=False)
    by_state = check(keyed, key=KEY, state=True, extra=[])
    keyed.settings.audit_checkpoints.unlink()
    by_state_alone = check(keyed)

    assert not by_checkpoints.ok and "tables emptied" in (by_checkpoints.problem or "")
    assert not by_state.ok
    assert not by_state_alone.ok
    assert "no 'launched' fact" in (by_state_alone.problem or "")


def test_a_step_set_to_done_directly_is_caught(keyed: Hub) -> None:
    """Rewrite 4: `UPDATE run_steps SET status='done'` for a step the chain never saw done."""
    run_id = activity(keyed)
    sql(keyed, update(RunStep).where(RunStep.run_id == run_id, RunStep.status != "done")
        .values(status="done"))

    result = check(keyed)

    assert not result.ok
    assert "is done in run_steps but the chain has no done fact" in (result.problem or "")


def test_a_forged_checkpoint_is_refused(keyed: Hub) -> None:
    """A checkpoint line written without the key is reported, not trusted."""
    activity(keyed)
    with keyed.settings.audit_checkpoints.open("a") as handle:
        handle.write('{"seq": 99, "hash": "' + "0" * 64 + '", "mac": "' + "1" * 64 + '"}\n')

    result = check(keyed)

    assert not result.ok
    assert "not signed" in (result.problem or "")


def test_the_completion_record_hash_is_an_anchor(hub: Hub) -> None:
    """The 'Audit chain: entry #N, sha256 H' line of a completion note anchors verify."""
    # Given an unkeyed chain and the last entry as a PSA ticket would show it
    activity(hub)
    with hub.ctx.sessions() as session:
        last = session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalars()
        entry = next(iter(last))
    record = f"...\n\nAudit chain: entry #{entry.id}, sha256 {entry.hash}"
    anchor = audit.parse_anchor(record)

    # When the newest entry is removed and the head rolled back
    ok_before = check(hub, key=None, extra=[anchor]).ok
    with hub.ctx.sessions() as session:
        prev = session.get(AuditEntry, entry.id - 1)
        assert prev is not None
        prev_hash = prev.hash
    sql(hub, delete(AuditEntry).where(AuditEntry.id == entry.id),
        update(AuditHead).values(last_id=entry.id - 1, last_hash=prev_hash))

    # Then the anchor catches it even without a key or checkpoints
    hub.settings.audit_checkpoints.unlink(missing_ok=True)
    result = check(hub, key=None, state=False, extra=[anchor])
    assert ok_before
    assert not result.ok and "anchor records entry" in (result.problem or "")


def test_a_plain_chain_then_keyed_entries_verifies(hub: Hub) -> None:
    """Existing chains (no key) keep verifying after a key is introduced."""
    # Given activity before the key, then activity after it
    activity(hub)
    settings = hub.settings.model_copy(update={"audit_key": SecretStr(KEY)})
    keyed = Hub(ctx=build_context(settings, clock=hub.clock, engine=hub.ctx.engine),
                clock=hub.clock, playbooks_dir=hub.playbooks_dir, settings=settings)
    with transaction(keyed.ctx.sessions) as session:
        keyed.ctx.runs.launch(session, "quick-check", client="ACME", inputs={}, by="user:max")

    # Then the mixed chain verifies with the key
    result = check(keyed)
    assert result.ok, result


def test_release_0002_database_verifies_with_state(tmp_path: Path) -> None:
    """A database upgraded from the previous release verifies, state included."""
    target = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, target)
    engine = make_engine(f"sqlite:///{target}")
    try:
        upgrade(engine)
        sessions: sessionmaker[Session] = sessionmaker(engine)
        with sessions() as session:
            result = audit.verify(session, check_state=True)
    finally:
        engine.dispose()
    assert result.ok, result
    assert result.checked > 0


def test_checkpoint_signature_depends_on_key_and_head() -> None:
    """The checkpoint MAC binds seq and hash to the key."""
    digest = hashlib.sha256(b"x").hexdigest()
    mac = audit.checkpoint_mac(KEY.encode(), 3, digest)

    assert audit.Checkpoint(3, digest, mac).signed_by(KEY.encode())
    assert not audit.Checkpoint(4, digest, mac).signed_by(KEY.encode())
    assert not audit.Checkpoint(3, digest, mac).signed_by(b"another key" * 4)
