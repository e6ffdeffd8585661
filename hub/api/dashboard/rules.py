"""Operations: the live mapping rules and playbooks, whether the files on disk validate
now, and how often each rule matched, failed or nearly matched recent events (manager)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.auth import Hub
from hub.api.dashboard.operations import manager_only
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token
from hub.config.mappings import load_rules
from hub.config.playbooks import load_library
from hub.errors import ConfigError
from hub.runtime.process import Runtime
from hub.store.models import InboxEvent

router = APIRouter(include_in_schema=False)
RECENT_EVENTS = 5000  # hit counts are over the newest processed events


@dataclass
class Hits:
    """Per rule id: events it matched, events where it (or one of its actions) failed, and
    events it nearly matched (one condition short)."""

    matched: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    near: Counter[str] = field(default_factory=Counter)

    def add(self, result: dict[str, Any]) -> None:
        """Count one stored result (each rule once per event)."""
        self.matched.update(set(result.get("matched") or []))
        self.failed.update(_rule_ids(result.get("errors")))
        self.near.update(_rule_ids(result.get("near_misses")))


def _rule_ids(entries: Iterable[Any] | None) -> set[str]:
    return {str(e["rule_id"]) for e in entries or [] if isinstance(e, dict) and e.get("rule_id")}


def _shown_file(file: str, directory: Path) -> str:
    """A rule's file as the admin knows it: relative to the mappings directory."""
    try:
        return str(Path(file).relative_to(directory))
    except ValueError:
        return file


def rule_hits(session: Session, limit: int = RECENT_EVENTS) -> Hits:
    """Counts over the results of the newest ``limit`` processed events (one indexed
    range read of one JSON column; the stored result already names the rules)."""
    hits = Hits()
    for result in session.execute(
            select(InboxEvent.result).where(InboxEvent.result.is_not(None))
            .order_by(InboxEvent.id.desc()).limit(limit)).scalars():
        if isinstance(result, dict):
            hits.add(result)
    return hits


@router.get("/ops/rules", response_class=HTMLResponse)
def rules_page(request: Request, ctx: Hub) -> Response:
    """Live rules with hit and near-miss counts; playbooks; on-disk validation now."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    rt = cast(Runtime, request.app.state.runtime)
    live = rt.live_rules()
    # Validate what is on disk now (a broken edit is refused at reload and the last good
    # set stays live, so the page says when the two differ).
    playbook_error = rules_error = None
    try:
        library = load_library(ctx.playbooks.directory)
    except ConfigError as exc:
        playbook_error, library = str(exc), ctx.playbooks()
    try:
        load_rules(rt.rules.directory, library, sources=rt.rules.sources)
    except ConfigError as exc:
        rules_error = str(exc)
    with ctx.sessions() as session:
        hits = rule_hits(session)
    rules = [{"id": c.rule.id, "on": ", ".join(str(k) for k in c.rule.on),
              "from": ", ".join(c.rule.from_ or []) or "any source",
              "file": _shown_file(c.file, rt.rules.directory),
              "line": c.line, "enabled": c.rule.enabled, "hits": hits.matched[c.rule.id],
              "failed": hits.failed[c.rule.id], "misses": hits.near[c.rule.id]}
             for c in live.rules]
    playbooks = [{"id": lp.playbook.id, "title": lp.playbook.title,
                  "version": lp.playbook.version, "steps": len(lp.playbook.steps),
                  "file": lp.file} for lp in ctx.playbooks().playbooks.values()]
    return render("ops_rules.html", who=who, rules=rules, playbooks=playbooks,
                  rules_error=rules_error, playbook_error=playbook_error,
                  recent=RECENT_EVENTS, csrf=csrf_token(request))
