"""The web dashboard: server-rendered pages (Jinja2 and a little plain JavaScript).

``router`` gathers the pages: sign-in, the portfolio, the run page.
"""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.dashboard import access, portfolio, runpage

router = APIRouter(include_in_schema=False)
router.include_router(access.router)
router.include_router(portfolio.router)
router.include_router(runpage.router)

__all__ = ["router"]
