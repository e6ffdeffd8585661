"""Jinja2 rendering for the dashboard: the environment, display filters, security headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def fmt_time(value: datetime | None) -> str:
    """``Mon 03 Mar 2025, 14:00 UTC``."""
    return value.strftime("%a %d %b %Y, %H:%M UTC") if value else "—"


def fmt_short(value: datetime | None) -> str:
    """``Mon 03 Mar, 14:00``."""
    return value.strftime("%a %d %b, %H:%M") if value else "—"


def span(seconds: int) -> str:
    """A duration as people say it: ``20 min``, ``5 h``, ``3 days``."""
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def relative(value: datetime | None, now: datetime) -> str:
    """``in 3 h`` / ``2 days ago``."""
    if value is None:
        return ""
    seconds = int((value - now).total_seconds())
    return f"in {span(seconds)}" if seconds >= 0 else f"{span(-seconds)} ago"


def age(value: datetime, now: datetime) -> str:
    """How long ago something started: ``just now``, ``5 h ago``."""
    seconds = int((now - value).total_seconds())
    return "just now" if seconds < 60 else f"{span(seconds)} ago"


def due(value: datetime | None, now: datetime) -> str:
    """``due in 3 h`` / ``overdue by 20 min``, for unfinished steps."""
    if value is None:
        return ""
    seconds = int((value - now).total_seconds())
    return f"due in {span(seconds)}" if seconds >= 0 else f"overdue by {span(-seconds)}"


def show(value: Any) -> str:
    """An input value as people read it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


_env.filters["when"] = fmt_time
_env.filters["short"] = fmt_short
_env.filters["show"] = show
_env.globals["relative"] = relative
_env.globals["due"] = due
_env.globals["age"] = age


def render_text(name: str, **context: Any) -> str:
    """A template rendered to a string."""
    return _env.get_template(name).render(**context)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as an HTML response with the dashboard's security headers."""
    return HTMLResponse(render_text(name, **context), status_code=status,
                        headers=SECURITY_HEADERS)
