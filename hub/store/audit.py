"""The tamper-evident audit trail: append-only rows, each hash chained to the one before.

Entries are keyed when the deployment has an audit key (``MSPHUB_AUDIT_KEY``): the hash
is then HMAC-SHA256 with that key, which is not in the database, so someone who can
write the tables but does not hold the key cannot recompute a consistent chain. Chains
written before a key was set (plain SHA-256) still verify; once a keyed entry appears,
every later entry must be keyed. After each commit that extends the chain, a *checkpoint*
of the head (``seq``, ``hash``, signed with the key) is appended to a file outside the
database and logged, so removing entries from the end, or emptying both tables, is
caught by :func:`verify` given those checkpoints. See docs/audit.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from hub.core.checklists.engine import Fact
from hub.store.db import insert_ignore
from hub.store.models import AuditEntry, AuditHead, Run, RunStep

GENESIS = "0" * 64
AUDIT_KEY = "msphub_audit_key"  # session.info: the HMAC key (bytes), when configured
_NEW_HEAD = "msphub_audit_new_head"  # session.info: (seq, hash) this transaction wrote
log = structlog.get_logger()


def entry_hash(
    *, seq: int, at: datetime, actor: str, action: str, run_id: int | None,
    step_id: str | None, event_id: int | None, data: Mapping[str, Any], prev_hash: str,
    key: bytes | None = None,
) -> str:
    """SHA-256 (or, with ``key``, HMAC-SHA256) over the canonical JSON of an entry and the
    previous entry's hash."""
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
    if key is not None:
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    session: Session, facts: Iterable[Fact], *, run_id: int | None,
    event_id: int | None = None,
) -> list[AuditEntry]:
    """Append facts to the chain inside the caller's transaction.

    The head row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite write
    transactions are already exclusive), so concurrent writers extend one chain.
    """
    return append_groups(session, [(facts, run_id, event_id)])[0]


Group = tuple[Iterable[Fact], int | None, int | None]  # facts, run id, event id


def append_groups(session: Session, groups: Sequence[Group]) -> list[list[AuditEntry]]:
    """Append several groups of facts in order, locking the head once (a batch's end).

    Returns:
        The entries of each group, in the order given.
    """
    head_stmt = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = session.execute(head_stmt).scalar_one_or_none()
    if head is None:
        # the first writer creates the head; concurrent first writers must not collide
        insert_ignore(session, AuditHead, {"id": 1, "last_id": 0, "last_hash": GENESIS}, ["id"])
        head = session.execute(head_stmt).scalar_one()
    out: list[list[AuditEntry]] = []
    seq, prev = head.last_id, head.last_hash
    key: bytes | None = session.info.get(AUDIT_KEY)
    for facts, run_id, event_id in groups:
        rows: list[AuditEntry] = []
        for fact in facts:
            seq += 1
            # JSON round-trip so the hashed data equals what the database returns later
            data = json.loads(json.dumps(dict(fact.data), default=str))
            digest = entry_hash(seq=seq, at=fact.at, actor=fact.actor, action=fact.action,
                                run_id=run_id, step_id=fact.step_id, event_id=event_id,
                                data=data, prev_hash=prev, key=key)
            rows.append(AuditEntry(id=seq, at=fact.at, actor=fact.actor, action=fact.action,
                                   run_id=run_id, step_id=fact.step_id, event_id=event_id,
                                   data=data, prev_hash=prev, hash=digest))
            prev = digest
        out.append(rows)
    session.add_all([row for rows in out for row in rows])
    head.last_id, head.last_hash = seq, prev
    session.info[_NEW_HEAD] = (seq, prev)  # exported as a checkpoint once committed
    return out


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain check: ``ok``, entries checked, and the first problem found."""

    ok: bool
    checked: int
    entry_id: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A head the chain had once: entry ``seq`` with ``hash`` (``mac`` signs it with the key).

    Written outside the database after each commit; a completion record on a PSA ticket
    (``Audit chain: entry #N, sha256 H``) is an unsigned one kept by another system.
    """

    seq: int
    hash: str
    mac: str | None = None
    origin: str = "checkpoint"

    def signed_by(self, key: bytes) -> bool:
        """True when ``mac`` is this checkpoint's signature under ``key``."""
        return self.mac is not None and hmac.compare_digest(self.mac, checkpoint_mac(
            key, self.seq, self.hash))


def checkpoint_mac(key: bytes, seq: int, digest: str) -> str:
    """The signature of a checkpoint (HMAC-SHA256 over ``checkpoint:<seq>:<hash>``)."""
    return hmac.new(key, f"checkpoint:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


_RECORD = re.compile(r"Audit chain: entry #(\d+), sha256 ([0-9a-f]{64})")
_ANCHOR = re.compile(r"#?(\d+)[:=]([0-9a-f]{64})")


def parse_anchor(text: str) -> Checkpoint:
    """``N:HASH`` or a completion record's ``Audit chain: entry #N, sha256 HASH`` line.

    Raises:
        ValueError: neither form.
    """
    match = _RECORD.search(text) or _ANCHOR.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected N:HASH or 'Audit chain: entry #N, sha256 HASH'")
    return Checkpoint(int(match[1]), match[2], origin="anchor")


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """The checkpoints in a file (one JSON object a line); unreadable lines are skipped.

    A missing file has none.
    """
    if not path.exists():
        return []
    out: list[Checkpoint] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
            out.append(Checkpoint(int(raw["seq"]), str(raw["hash"]), raw.get("mac"),
                                  origin=f"{path.name}"))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def configure(sessions: sessionmaker[Session], *, key: str | None,
              checkpoint_file: Path | None) -> None:
    """Key the chain written through ``sessions`` and export a checkpoint after each commit.

    The key goes into each session's ``info`` (never into the database). After a commit
    that extended the chain, one JSON line ``{"seq", "hash", "at", "mac"}`` is appended to
    ``checkpoint_file`` (created with mode 0600) and logged as ``audit_checkpoint``.
    """
    key_bytes = key.encode("utf-8") if key else None
    info = dict(sessions.kw.get("info") or {})
    info[AUDIT_KEY] = key_bytes
    sessions.configure(info=info)

    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint released; the outer transaction may still roll back
        head = session.info.pop(_NEW_HEAD, None)
        if head is None:
            return
        seq, digest = head
        mac = checkpoint_mac(key_bytes, seq, digest) if key_bytes else None
        log.info("audit_checkpoint", seq=seq, hash=digest, mac=mac)
        if checkpoint_file is not None:
            _write_checkpoint(checkpoint_file, {"seq": seq, "hash": digest,
                                                "at": datetime.now(UTC).isoformat(),
                                                "mac": mac})

    def after_rollback(session: Session) -> None:
        if not session.in_nested_transaction():
            session.info.pop(_NEW_HEAD, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_rollback", after_rollback)


def _write_checkpoint(path: Path, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    except OSError as exc:  # the commit stands; the log line above still carries the head
        log.warning("audit_checkpoint_not_written", file=str(path), reason=exc.strerror)


def verify(session: Session, *, batch: int = 5000, key: bytes | None = None,
           checkpoints: Iterable[Checkpoint] = (), check_state: bool = False) -> VerifyResult:
    """Walk the whole chain and report the first entry altered, inserted or removed.

    Args:
        key: the audit key; keyed entries need it, and once one is found every later
            entry must be keyed (a rewrite without the key cannot continue the chain).
        checkpoints: heads recorded outside the database (checkpoint file, log, a PSA
            completion record): each must still be in the chain, with the same hash;
            with a key, file checkpoints must carry a valid signature.
        check_state: also check that run and step state in the tables agree with the
            facts of the chain (a step set to done directly is reported).
    """
    wanted: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        if key is not None and cp.origin != "anchor" and cp.mac is None:
            continue  # written before the key was set: a hint anyone could have written
        if key is not None and cp.origin != "anchor" and not cp.signed_by(key):
            return VerifyResult(False, 0, cp.seq,
                                f"checkpoint of entry {cp.seq} ({cp.origin}) is not signed "
                                "with the audit key (forged or from another deployment)")
        wanted.setdefault(cp.seq, []).append(cp)
    facts = _Facts()
    expected_seq, prev = 0, GENESIS
    checked = 0
    keyed_seen = False
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
            fields: dict[str, Any] = {
                "seq": row.id, "at": row.at, "actor": row.actor, "action": row.action,
                "run_id": row.run_id, "step_id": row.step_id, "event_id": row.event_id,
                "data": row.data, "prev_hash": row.prev_hash}
            if key is not None and entry_hash(**fields, key=key) == row.hash:
                keyed_seen = True
            elif entry_hash(**fields) != row.hash:
                return VerifyResult(False, checked, row.id, "content was altered")
            elif keyed_seen:
                return VerifyResult(False, checked, row.id,
                                    "not keyed although earlier entries are (rewritten "
                                    "without the audit key)")
            for cp in wanted.pop(row.id, []):
                if not hmac.compare_digest(cp.hash, row.hash):
                    return VerifyResult(False, checked, row.id,
                                        f"differs from the {cp.origin} recorded for it "
                                        "(altered and re-chained)")
            facts.add(row)
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
    if wanted:
        seq = max(wanted)
        origin = wanted[seq][0].origin
        return VerifyResult(False, checked, seq,
                            f"the {origin} records entry {seq} but the chain ends at entry "
                            f"{expected_seq} (entries removed, head rolled back or tables "
                            "emptied)")
    if check_state:
        mismatch = facts.disagreement(session)
        if mismatch is not None:
            return VerifyResult(False, checked, None, mismatch)
    return VerifyResult(True, checked)


_STEP_FACTS = {"step_done": "done", "step_skipped": "skipped"}
_RUN_FACTS = {"completed": "completed", "cancelled": "cancelled"}


class _Facts:
    """What the chain says about runs and steps, collected while it is walked."""

    def __init__(self) -> None:
        self.launched: set[int] = set()
        self.run_end: dict[int, str] = {}
        self.steps: dict[tuple[int, str], str] = {}

    def add(self, row: AuditEntry) -> None:
        if row.run_id is None:
            return
        if row.action == "launched":
            self.launched.add(row.run_id)
        elif row.action in _RUN_FACTS:
            self.run_end[row.run_id] = _RUN_FACTS[row.action]
        elif row.action in _STEP_FACTS and row.step_id:
            self.steps[(row.run_id, row.step_id)] = _STEP_FACTS[row.action]

    def disagreement(self, session: Session) -> str | None:
        """The first run or step whose table state the chain does not account for."""
        present: set[int] = set()
        for run_id, status in session.execute(select(Run.id, Run.status).order_by(Run.id)):
            present.add(run_id)
            if run_id not in self.launched:
                return f"run {run_id} has no 'launched' fact in the chain"
            said = self.run_end.get(run_id, "active")
            if said != status:
                return (f"run {run_id} is {status} in the runs table but the chain says "
                        f"{said}")
        stmt = select(RunStep.run_id, RunStep.step_id, RunStep.status).order_by(
            RunStep.run_id, RunStep.position)
        for run_id, step_id, status in session.execute(stmt):
            step_said = self.steps.get((run_id, step_id))
            if status in ("done", "skipped") and step_said != status:
                return (f"step '{step_id}' of run {run_id} is {status} in run_steps but the "
                        f"chain has no {status} fact for it")
            if status not in ("done", "skipped") and step_said is not None:
                return (f"step '{step_id}' of run {run_id} is {status} in run_steps but the "
                        f"chain says {step_said}")
        missing = sorted(self.launched - present)
        if missing:
            return f"run {missing[0]} was launched in the chain but is missing from runs"
        return None
