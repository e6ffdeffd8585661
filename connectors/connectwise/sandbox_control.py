"""The sandbox's ``/_sandbox`` control API: the kit's switch routes, thin callbacks and
record changes from other processes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.connectwise.sandbox_store import SandboxError
from connectors.sandbox import control_routes as kit_routes

if TYPE_CHECKING:
    from connectors.connectwise.sandbox import ConnectWiseSandbox


def control_routes(sandbox: ConnectWiseSandbox) -> list[Route]:
    """Routes under ``/_sandbox/`` (no auth: the sandbox only listens on 127.0.0.1).

    From the kit: ``fail`` (also ``after_apply``), ``delay``, ``callbacks/drop``,
    ``callbacks/duplicate``, ``reset``, ``stats``.
    """

    async def args(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise SandboxError(400, "InvalidObject", "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise SandboxError(400, "InvalidObject", "body must be a JSON object")
        return data

    async def thin(request: Request) -> Response:
        sandbox.thin_callbacks = bool((await args(request)).get("enabled", True))
        return JSONResponse({"ok": True})

    async def companies(request: Request) -> Response:
        data = await args(request)
        return JSONResponse(sandbox.create_company(data["name"], data.get("identifier")), 201)

    async def tickets(request: Request) -> Response:
        data = await args(request)
        summary = data.pop("summary")
        company_id = int(data.pop("company_id"))
        return JSONResponse(sandbox.create_ticket(summary, company_id=company_id, **data), 201)

    async def ticket(request: Request) -> Response:
        ticket_id = int(request.path_params["id"])
        return JSONResponse(sandbox.update_ticket(ticket_id, **(await args(request))))

    async def notes(request: Request) -> Response:
        return JSONResponse(sandbox.notes(int(request.path_params["id"])))

    async def agreements(request: Request) -> Response:
        data = await args(request)
        name = data.pop("name")
        company_id = int(data.pop("company_id"))
        return JSONResponse(sandbox.create_agreement(company_id, name, **data), 201)

    return [
        *kit_routes(sandbox.faults, stats=sandbox.stats, reset=sandbox.reset_switches,
                    webhooks="callbacks"),
        Route("/_sandbox/callbacks/thin", thin, methods=["POST"]),
        Route("/_sandbox/companies", companies, methods=["POST"]),
        Route("/_sandbox/tickets", tickets, methods=["POST"]),
        Route("/_sandbox/tickets/{id:int}", ticket, methods=["PATCH"]),
        Route("/_sandbox/tickets/{id:int}/notes", notes),
        Route("/_sandbox/agreements", agreements, methods=["POST"]),
    ]
