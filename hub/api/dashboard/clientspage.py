"""The clients page (manager): hub clients with their links, vendor records events named
that no client is linked to, and — on demand, since it reads every vendor now — the
suggested links (``hub.services.linking``, as ``msphub clients suggest``) to accept.

Accepting a suggestion is the same form as linking an unlinked record: it posts to
``/ops/clients/link``, which links like ``POST /api/clients/{key}/links`` and
``msphub clients link`` (CSRF, manager role, the directory's own checks).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from hub.api.auth import Hub, Principal
from hub.api.clients import LinkIn
from hub.api.dashboard.operations import manager_only, post_form, runtime_of
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token
from hub.api.errors import ApiError
from hub.core.linking.proposals import Proposal, Verdict
from hub.services.context import HubContext
from hub.services.linking import Suggestions, listing_errors, suggestions
from hub.services.tokens import Role
from hub.store.db import transaction

router = APIRouter(include_in_schema=False)
PAGE = "/ops/clients"
SUGGESTIONS = "/ops/clients/suggestions"
KindQuery = Annotated[str | None, Query(max_length=10)]
KINDS = {"rmm": "RMM sites and organizations", "psa": "PSA companies"}
SHOWN = (Verdict.SUGGESTED, Verdict.AMBIGUOUS, Verdict.WEAK)


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _proposal_row(p: Proposal, provisional: dict[tuple[str, str, str], str]) -> dict[str, Any]:
    """A proposal as the page shows it: the record, then the candidates to choose from."""
    r = p.record
    candidates = [c for c in ((p.best,) if p.best else ()) + p.alternatives]
    return {"source": r.source, "type": r.type, "vendor_id": r.id, "vendor_name": r.name,
            "hint": r.psa_company_name, "verdict": str(p.verdict),
            "confidence": _percent(p.confidence),
            "client": p.best.client if p.best else None,
            "client_name": (p.best.client_name or p.best.client) if p.best else None,
            "reasons": list(p.best.reasons) if p.best else [],
            "provisional": provisional.get((r.source, r.type, r.id)),
            "candidates": [{"key": c.client, "name": c.client_name or c.client,
                            "confidence": _percent(c.confidence)} for c in candidates]}


def suggestions_view(found: Suggestions) -> dict[str, Any]:
    """What the suggestions section shows: the likely links first, how many had none."""
    order = {Verdict.SUGGESTED: 0, Verdict.AMBIGUOUS: 1, Verdict.WEAK: 2}
    shown = sorted((p for p in found.proposals if p.verdict in SHOWN),
                   key=lambda p: (order[p.verdict], -p.confidence, p.record.name or ""))
    return {"rows": [_proposal_row(p, dict(found.provisional)) for p in shown],
            "without": sum(1 for p in found.proposals if p.verdict is Verdict.NONE),
            "already_linked": found.already_linked, "threshold": _percent(found.threshold),
            "sources": [x.source for x in found.listings if x.error is None],
            "errors": listing_errors(found.listings)}


def clients_view(request: Request, ctx: HubContext, who: Principal, *,
                 found: dict[str, Any] | None = None, kind: str | None = None,
                 error: str | None = None, status: int = 200) -> Response:
    """The clients page, with the suggestions section filled in when they were fetched."""
    with ctx.sessions() as session:
        clients = [{"key": c.key, "name": c.name or c.key, "tags": list(c.tags or ()),
                    "provisional": c.provisional,
                    "links": [(x.source, x.object_type, x.vendor_id, x.vendor_name)
                              for x in c.links]} for c in ctx.clients.all(session)]
        unlinked = ctx.clients.unlinked(session)
    return render("ops_clients.html", status, who=who, clients=clients, unlinked=unlinked,
                  error=error, csrf=csrf_token(request), suggested=found, kind=kind,
                  kinds=KINDS)


@router.get(PAGE, response_class=HTMLResponse)
def clients_page(request: Request, ctx: Hub) -> Response:
    """Hub clients with their links, and vendor records no client is linked to."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    return clients_view(request, ctx, who)


@router.get(SUGGESTIONS, response_class=HTMLResponse)
def suggestions_page(request: Request, ctx: Hub, kind: KindQuery = None) -> Response:
    """The clients page with link suggestions read from every source that lists its
    records (vendor I/O now; links nothing). ``kind``: only ``rmm`` or ``psa`` sources."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    chosen = kind if kind in KINDS else None
    with ctx.sessions() as session:
        found = suggestions(session, ctx.clients, runtime_of(request).sources, kind=chosen)
    return clients_view(request, ctx, who, found=suggestions_view(found), kind=chosen)


def _link_body(form: dict[str, str]) -> LinkIn:
    try:
        return LinkIn.model_validate({
            "source": form.get("source", ""), "type": form.get("type", "company"),
            "vendor_id": form.get("vendor_id", ""),
            "vendor_name": form.get("vendor_name") or None})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ApiError(422, "invalid_request", "; ".join(problems)) from exc


@router.post(f"{PAGE}/link")
async def link_client(request: Request, ctx: Hub) -> Response:
    """Link a vendor record to a hub client (manager), as the API's link; an accepted
    suggestion comes back to the suggestions (read again, so the linked one is gone)."""

    def work(form: dict[str, str], who: Principal) -> str:
        body = _link_body(form)
        key = form.get("client", "").strip()
        with transaction(ctx.sessions) as session:
            ctx.clients.link(session, key, body.source, body.type, body.vendor_id,
                             name=body.vendor_name, by=who.actor)
        if form.get("back") == "suggestions":
            kind = form.get("kind", "")
            return SUGGESTIONS + (f"?kind={kind}" if kind in KINDS else "")
        return PAGE

    return await post_form(request, ctx, Role.MANAGER, "linking a vendor record", work,
                           lambda who, msg, code: clients_view(request, ctx, who, error=msg,
                                                               status=code))
