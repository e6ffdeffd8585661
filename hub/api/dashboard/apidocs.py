"""The API docs page (Swagger UI) served from the ``swagger-ui-bundle`` distribution.

FastAPI's default page loads Swagger UI from a CDN and its favicon from FastAPI's site,
so it is blank on a machine without internet. This page loads the same assets from
``/static/swagger-ui`` (mounted from the installed package by ``hub.api.app``) and starts
them with a script file of its own, so no host but the hub's is referenced.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_URL = "/static/swagger-ui"

router = APIRouter(include_in_schema=False)

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>msphub API</title>
  <link rel="stylesheet" href="{SWAGGER_URL}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{SWAGGER_URL}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  <script src="{SWAGGER_URL}/swagger-ui-bundle.js"></script>
  <script src="/static/swagger-init.js"></script>
</body>
</html>
"""
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/docs", response_class=HTMLResponse)
def docs() -> Response:
    """Swagger UI for /openapi.json, with every asset served by the hub."""
    return HTMLResponse(_PAGE, headers=_HEADERS)
