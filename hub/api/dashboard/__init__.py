"""The web dashboard: server-rendered pages (Jinja2 and a little plain JavaScript).

``router`` gathers the pages: sign-in, the portfolio, the run page (and its forms), my
work, the operations pages, and the completion record (page and PDF) with its share links
and the MSP's logo.
"""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.dashboard import (
    access,
    actions,
    branding,
    clientspage,
    evidence,
    operations,
    portfolio,
    rules,
    runpage,
    sources,
    work,
)

router = APIRouter(include_in_schema=False)
router.include_router(access.router)
router.include_router(portfolio.router)
router.include_router(runpage.router)
router.include_router(work.router)
router.include_router(actions.router)
router.include_router(operations.router)
router.include_router(clientspage.router)
router.include_router(evidence.router)
router.include_router(branding.router)
router.include_router(sources.router)
router.include_router(rules.router)

__all__ = ["router"]
