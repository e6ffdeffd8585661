"""HTTP error bodies: every error is ``{"error": code, "detail": message, ...}``.

```
hub error / exception               HTTP   error code
ApiError (raised by the API layer)  any    its own code
StepLocked                          409    step_locked   (+ blockers)
NotAllowed                          409    not_allowed
NotFound                            404    not_found
RequestValidationError              422    invalid_request (+ errors: field, message)
Starlette HTTPException             its    http_<status>
anything else                       500    internal_error (logged with the request id)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.errors import NotAllowed, NotFound, StepLocked

log = structlog.get_logger("hub.api")


class ApiError(Exception):
    """An error the API reports as-is: status, machine code, human message, extra fields."""

    def __init__(self, status: int, code: str, detail: str, *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(detail)


def error_response(status: int, code: str, detail: str, *,
                   headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The JSON body every error shares."""
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status,
                        headers=dict(headers or {}))


def _field(loc: Sequence[Any]) -> str:
    # ("body", "inputs", "x") -> "body.inputs.x"; ("query", "limit") -> "query.limit"
    return ".".join(str(part) for part in loc) or "request"


def describe_validation(exc: RequestValidationError) -> list[dict[str, str]]:
    """One ``{field, message}`` per problem, JSON-safe (pydantic's ctx may hold exceptions)."""
    out: list[dict[str, str]] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif err.get("type") == "extra_forbidden":
            message = "unknown field (check its spelling)"
        out.append({"field": _field(loc), "message": message})
    return out


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)


async def _step_locked(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StepLocked)
    return error_response(409, "step_locked", exc.reason, blockers=list(exc.blockers),
                          step=exc.step)


async def _not_allowed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotAllowed)
    return error_response(409, "not_allowed", exc.reason)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc) or "not found")


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = describe_validation(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return error_response(422, "invalid_request", detail, errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, f"http_{exc.status_code}", str(exc.detail),
                          headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The outer edge: the one place a bare Exception is caught, logged with the request id.
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", request_id=request_id, path=request.url.path,
              error=type(exc).__name__, exc_info=exc)
    headers = {"X-Request-ID": request_id} if request_id else None
    return error_response(500, "internal_error",
                          "an unexpected error occurred; quote the request id to the admin",
                          headers=headers, request_id=request_id)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StepLocked, _step_locked)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
