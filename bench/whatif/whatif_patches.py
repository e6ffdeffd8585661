"""Bench-only "what if" patches: measure a proposed hub change without editing ``hub/``.

Applied at start-up of a hub process when ``BENCH_WHATIF`` names them (comma-separated)
and this directory is on ``PYTHONPATH`` (``bench/run.py --whatif ...`` does both; see
``sitecustomize.py``), or in-process by ``bench/micro.py --whatif ...``. Each patch is
the smallest behaviour-preserving version of one proposal in ``bench/RESULTS.md``; none
of them is meant to be shipped as a monkeypatch.

* ``noping``     - PostgreSQL pool without ``pool_pre_ping`` (one ``SELECT 1`` round trip
                   less per connection checkout; ~8 checkouts per event).
* ``runinit``    - ``Run(steps=[], completed_at=None, cancel_reason=None)`` at launch, so the
                   new run's empty ``steps`` collection is not lazy-loaded (a SELECT) and the
                   unchanged ``completed_at``/``cancel_reason`` do not cause an UPDATE.
* ``onerecord``  - write-back records ``remote_id`` and ``sent`` in one transaction when no
                   attachment/status step follows the post (launch and step notes).
* ``sqlitelock`` - embedded SQLite: a process-wide lock around write transactions, so
                   writers queue on a Python lock instead of SQLite's sleeping busy handler.
* ``httpxlog``   - httpx's own INFO line per request ("HTTP Request: POST ...") off; the
                   connector already logs every request at DEBUG.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

APPLIED: list[str] = []


def _noping() -> None:
    import hub.runtime.root
    import hub.store.db

    orig = hub.store.db.make_engine

    def make_engine(url: str, **kw: Any) -> Any:
        if not url.startswith("sqlite"):
            kw.setdefault("pool_pre_ping", False)
        return orig(url, **kw)

    hub.store.db.make_engine = make_engine
    hub.runtime.root.make_engine = make_engine


def _runinit() -> None:
    from sqlalchemy import event

    from hub.store.models import Run

    @event.listens_for(Run, "init")
    def _init(target: Any, args: Any, kwargs: dict[str, Any]) -> None:
        kwargs.setdefault("steps", [])
        kwargs.setdefault("completed_at", None)
        kwargs.setdefault("cancel_reason", None)


def _onerecord() -> None:
    import hub.services.writeback as wb

    orig_record = wb._record
    local = threading.local()

    def _record(ctx: Any, note_id: int, *, remote_id: str | None = None, sent: bool = False,
                error: str | None = None, dead: bool = False, uncertain: bool = True) -> None:
        # _deliver_one calls _record(remote_id=...) right after the post, then
        # _record(remote_id=..., sent=True) at the end: when nothing happens in between
        # (no attachment, not a completion), defer the first into the second.
        plain = getattr(local, "plain", None)
        if plain == note_id and remote_id is not None and not sent and error is None:
            return
        orig_record(ctx, note_id, remote_id=remote_id, sent=sent, error=error, dead=dead,
                    uncertain=uncertain)

    orig_claim = wb._claim

    def _claim(ctx: Any, note_id: int) -> Any:
        note = orig_claim(ctx, note_id)
        local.plain = note_id if (note is not None and not note.attachment
                                  and note.kind != "completed") else None
        return note

    wb._record = _record
    wb._claim = _claim


def _sqlitelock() -> None:
    import importlib

    import hub.store.db as db

    orig = db.transaction
    locks: dict[int, threading.RLock] = {}
    guard = threading.Lock()

    @contextmanager
    def transaction(factory: Any) -> Iterator[Any]:
        bind = factory.kw.get("bind")
        if bind is None or bind.dialect.name != "sqlite":
            with orig(factory) as session:
                yield session
            return
        with guard:
            lock = locks.setdefault(id(bind), threading.RLock())
        with lock, orig(factory) as session:
            yield session

    db.transaction = transaction
    for name in ("hub.services.pipeline", "hub.services.writeback", "hub.services.intake",
                 "hub.services.polling", "hub.services.deadletters", "hub.services.overdue",
                 "hub.api.auth", "hub.api.runs",
                 "hub.api.events", "hub.cli.admin", "hub.cli.runs"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(mod, "transaction", None) is orig:
            mod.transaction = transaction  # type: ignore[attr-defined]


def _httpxlog() -> None:
    import hub.logging as hl

    orig = hl.configure_logging

    def configure_logging(*a: Any, **kw: Any) -> None:
        orig(*a, **kw)
        logging.getLogger("httpx").setLevel(logging.WARNING)

    hl.configure_logging = configure_logging
    try:
        import hub.cli.app as app

        app.configure_logging = configure_logging  # type: ignore[attr-defined]
    except ImportError:
        pass
    logging.getLogger("httpx").setLevel(logging.WARNING)


PATCHES = {"noping": _noping, "runinit": _runinit, "onerecord": _onerecord,
           "sqlitelock": _sqlitelock, "httpxlog": _httpxlog}


def apply(names: str | list[str]) -> list[str]:
    """Apply the named patches (comma-separated or a list); returns what was applied."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    for name in filter(None, items):
        if name not in PATCHES:
            raise SystemExit(f"unknown what-if patch {name!r}; known: {', '.join(PATCHES)}")
        if name not in APPLIED:
            PATCHES[name]()
            APPLIED.append(name)
    return APPLIED
