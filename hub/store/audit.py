"""The tamper-evident audit trail: append-only rows, each SHA-256 chained to the one before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.checklists.engine import Fact
from hub.store.db import insert_ignore
from hub.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def entry_hash(
    *, seq: int, at: datetime, actor: str, action: str, run_id: int | None,
    step_id: str | None, event_id: int | None, data: Mapping[str, Any], prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of an entry and the previous entry's hash."""
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "run_id": run_id,
            "step_id": step_id,
            "event_id": event_id,
            "data": data,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    session: Session, facts: Iterable[Fact], *, run_id: int | None,
    event_id: int | None = None,
) -> list[AuditEntry]:
    """Append facts to the chain inside the caller's transaction.

    The head row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write
    transactions are already exclusive), so concurrent writers extend one chain.
    """
    head_stmt = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = session.execute(head_stmt).scalar_one_or_none()
    if head is None:
        # the first writer creates the head; concurrent first writers must not collide
        insert_ignore(session, AuditHead, {"id": 1, "last_id": 0, "last_hash": GENESIS}, ["id"])
        head = session.execute(head_stmt).scalar_one()
    rows: list[AuditEntry] = []
    seq, prev = head.last_id, head.last_hash
    for fact in facts:
        seq += 1
        # JSON round-trip so the hashed data equals what the database returns later
        data = json.loads(json.dumps(dict(fact.data), default=str))
        digest = entry_hash(seq=seq, at=fact.at, actor=fact.actor, action=fact.action,
                            run_id=run_id, step_id=fact.step_id, event_id=event_id,
                            data=data, prev_hash=prev)
        rows.append(AuditEntry(id=seq, at=fact.at, actor=fact.actor, action=fact.action,
                               run_id=run_id, step_id=fact.step_id, event_id=event_id,
                               data=data, prev_hash=prev, hash=digest))
        prev = digest
    session.add_all(rows)
    head.last_id, head.last_hash = seq, prev
    return rows


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain check: ``ok``, entries checked, and the first problem found."""

    ok: bool
    checked: int
    entry_id: int | None = None
    problem: str | None = None


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain and report the first entry altered, inserted or removed."""
    expected_seq, prev = 0, GENESIS
    checked = 0
    last_id: int | None = None  # no lower bound: a forged id <= 0 is checked too
    while True:
        stmt = select(AuditEntry).order_by(AuditEntry.id).limit(batch)
        if last_id is not None:
            stmt = stmt.where(AuditEntry.id > last_id)
        rows = session.execute(stmt).scalars().all()
        if not rows:
            break
        for row in rows:
            expected_seq += 1
            if row.id != expected_seq:
                problem = (f"entry {expected_seq} is missing (removed)" if row.id > expected_seq
                           else f"entry {row.id} is out of sequence (inserted)")
                return VerifyResult(False, checked, expected_seq, problem)
            if row.prev_hash != prev:
                return VerifyResult(False, checked, row.id,
                                    "does not link to the entry before it (inserted or removed)")
            digest = entry_hash(seq=row.id, at=row.at, actor=row.actor, action=row.action,
                                run_id=row.run_id, step_id=row.step_id, event_id=row.event_id,
                                data=row.data, prev_hash=row.prev_hash)
            if digest != row.hash:
                return VerifyResult(False, checked, row.id, "content was altered")
            prev = row.hash
            checked += 1
        last_id = rows[-1].id
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and expected_seq > head.last_id:
        return VerifyResult(False, checked, head.last_id + 1,
                            f"inserted after the recorded end of the chain (entry "
                            f"{head.last_id}), or the chain head was rolled back")
    if head is not None and (head.last_id != expected_seq or head.last_hash != prev):
        return VerifyResult(False, checked, head.last_id,
                            f"the chain ends at entry {expected_seq} but entry {head.last_id} "
                            "was recorded (entries removed from the end)")
    return VerifyResult(True, checked)
