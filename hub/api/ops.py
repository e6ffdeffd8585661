"""Operational endpoints: /healthz, /metrics, /api/audit/verify."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from hub.api.auth import Hub, Principal, require
from hub.api.metrics import ApiMetrics
from hub.api.schemas import Health, VerifyOut
from hub.services.tokens import Role
from hub.store import audit

log = structlog.get_logger("hub.api")

router = APIRouter()

Auditor = Annotated[Principal, Depends(require(Role.ADMIN, "verifying the audit trail"))]


@router.get("/healthz", response_model=Health, tags=["operations"],
            responses={503: {"model": Health, "description": "The database is unreachable"}})
def healthz(ctx: Hub) -> Health | JSONResponse:
    """Liveness and database check (no authentication)."""
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("healthz_database_unreachable", error=type(exc).__name__)
        body = Health(status="unavailable", database="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", database="ok")


@router.get("/metrics", tags=["operations"], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process (no authentication)."""
    registry: ApiMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/audit/verify", response_model=VerifyOut, tags=["audit"],
            responses={401: {"description": "Missing token"},
                       403: {"description": "Admin only"}})
def verify_audit(ctx: Hub, _who: Auditor) -> VerifyOut:
    """Walk the whole audit chain and report the first altered, inserted or removed entry."""
    with ctx.sessions() as session:
        result = audit.verify(session)
    if not result.ok:
        log.error("audit_chain_broken", entry_id=result.entry_id, problem=result.problem)
    return VerifyOut(ok=result.ok, checked=result.checked, entry_id=result.entry_id,
                     problem=result.problem)
