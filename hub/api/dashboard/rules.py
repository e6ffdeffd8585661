"""Operations: the live mapping rules and playbooks, whether the files on disk validate
now, and how often each rule matched or nearly matched recent events (manager)."""

from __future__ import annotations

from collections import Counter
from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

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
    hits: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    with ctx.sessions() as session:
        results = session.execute(
            select(InboxEvent.result).where(InboxEvent.result.is_not(None))
            .order_by(InboxEvent.id.desc()).limit(RECENT_EVENTS)).scalars()
        for result in results:
            hits.update(set((result or {}).get("matched") or []))
            misses.update({str(m.get("rule_id")) for m in
                           (result or {}).get("near_misses") or [] if isinstance(m, dict)})
    rules = [{"id": c.rule.id, "on": ", ".join(str(k) for k in c.rule.on),
              "from": ", ".join(c.rule.from_ or []) or "any source", "file": c.file,
              "line": c.line, "enabled": c.rule.enabled, "hits": hits.get(c.rule.id, 0),
              "misses": misses.get(c.rule.id, 0)} for c in live.rules]
    playbooks = [{"id": lp.playbook.id, "title": lp.playbook.title,
                  "version": lp.playbook.version, "steps": len(lp.playbook.steps),
                  "file": lp.file} for lp in ctx.playbooks().playbooks.values()]
    return render("ops_rules.html", who=who, rules=rules, playbooks=playbooks,
                  rules_error=rules_error, playbook_error=playbook_error,
                  recent=RECENT_EVENTS, csrf=csrf_token(request))
