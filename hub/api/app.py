"""The FastAPI application: REST API, OpenAPI docs, health, metrics and the dashboard."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hub import __version__
from hub.api import clients, dashboard, events, ops, playbooks, runs, webhooks
from hub.api.dashboard import apidocs
from hub.api.errors import install_error_handlers
from hub.api.metrics import ApiMetrics, SourceGauges
from hub.api.middleware import RequestContextMiddleware
from hub.runtime.process import Runtime

STATIC = Path(__file__).resolve().parent / "static"
API_MAX_BODY = 1_048_576

DESCRIPTION = """\
Runs an MSP's recurring processes as live, assigned, ordered, auditable checklists.

Authenticate with `Authorization: Bearer <token>` (`msphub tokens create`). Roles:
**viewer** reads; **technician** completes and skips (unprotected) steps, comments and
reassigns; **manager** also launches and cancels runs and skips protected steps;
**admin** also verifies the audit trail.

Errors are JSON: `{"error": "<code>", "detail": "<message>", ...}`.
"""

TAGS = [
    {"name": "runs", "description": "Live checklists: launch, list, work on, audit."},
    {"name": "playbooks", "description": "Checklist templates."},
    {"name": "clients", "description": "The client directory: hub clients and the PSA "
                                      "companies and RMM sites linked to them."},
    {"name": "audit", "description": "The hash-chained audit trail."},
    {"name": "events", "description": "Inbox events: what arrived and what the rules did."},
    {"name": "webhooks", "description": "Vendor webhooks, verified by each connector."},
    {"name": "operations", "description": "Health and Prometheus metrics (no token)."},
]


def create_app(rt: Runtime) -> FastAPI:
    """Build the API and dashboard around a process's runtime (``build_runtime``).

    Start it with ``uvicorn.run(create_app(rt), host=..., port=..., access_log=False)``
    (this app logs its own access lines, without query strings).
    """
    ctx = rt.ctx
    app = FastAPI(title="msphub", version=__version__, description=DESCRIPTION,
                  openapi_tags=TAGS, docs_url=None, redoc_url=None)
    # what the route dependencies hand to each handler (hub.api.auth)
    app.state.ctx = ctx
    app.state.runtime = rt
    metrics = ApiMetrics(ctx)
    metrics.registry.register(SourceGauges(rt.sources, rt.ctx))
    app.state.metrics = metrics
    install_error_handlers(app)
    # Webhook bodies (if mounted here) may be as large as the settings allow; API bodies
    # are small JSON, so 1 MiB is plenty.
    max_body = max(API_MAX_BODY, ctx.settings.webhook_max_body)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, max_body=max_body)
    app.include_router(ops.router)
    app.include_router(playbooks.router)
    app.include_router(runs.router)
    app.include_router(clients.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(dashboard.router)
    app.include_router(apidocs.router)  # /docs, from the packaged Swagger UI (offline)
    app.mount(apidocs.SWAGGER_URL, StaticFiles(directory=apidocs.SWAGGER_DIR), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
