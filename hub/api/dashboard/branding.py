"""The MSP's branding for client-facing pages, loaded once per app, and its logo's URL.

``config/branding.yaml`` is read the first time a record is shown (not at start-up, so a
hub without the file, or with a broken one, still starts). A broken file is logged, the
records fall back to the default branding, and the record page tells signed-in people
why, rather than the client seeing an error page.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub.api.auth import Hub
from hub.config.branding import DEFAULT, FILE, Branding, load_branding
from hub.errors import ConfigError
from hub.services.context import HubContext

log = structlog.get_logger()
router = APIRouter(include_in_schema=False)
LOGO_URL = "/brand/logo"


@dataclass(frozen=True)
class Brand:
    """The branding in force and, if the file was refused, why."""

    branding: Branding
    error: str | None = None


def brand(request: Request, ctx: HubContext) -> Brand:
    """The app's branding (``app.state.brand``; loaded from the config dir on first use)."""
    state = request.app.state
    known = getattr(state, "brand", None)
    if isinstance(known, Brand):
        return known
    try:
        found = Brand(load_branding(ctx.settings.config_dir / FILE))
    except ConfigError as exc:
        log.error("branding_invalid", error=str(exc))
        found = Brand(DEFAULT, str(exc))
    state.brand = found
    return found


@router.get(LOGO_URL)
def logo(request: Request, ctx: Hub) -> Response:
    """The MSP's logo (public: the shared record shows it); 404 when none is configured."""
    found = brand(request, ctx).branding.logo
    if found is None:
        return Response(status_code=404)
    return Response(found.data, media_type=found.media_type,
                    headers={"Cache-Control": "public, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})
