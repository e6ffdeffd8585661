"""The sandbox's ASGI app: the ConnectWise REST subset plus a ``/_sandbox`` control API,
behind the sandbox kit's fault gate."""

from __future__ import annotations

import base64
import hmac
import json
import math
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.connectwise.sandbox_control import control_routes
from connectors.connectwise.sandbox_query import QueryError
from connectors.connectwise.sandbox_store import API_MEMBER, API_MEMBER_ID, SandboxError
from connectors.sandbox import CONTROL_PREFIX, Failure, FaultGate

if TYPE_CHECKING:
    from connectors.connectwise.sandbox import ConnectWiseSandbox


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A vendor-shaped error response."""
    return JSONResponse({"code": code, "message": message, "errors": []}, status, headers)


def _int(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise SandboxError(400, "InvalidParameter", f"{name} must be a positive integer", name)
    return int(value)


def _link(request: Request, page: int, size: int, total: int) -> dict[str, str]:
    last = max(1, math.ceil(total / size))
    if last == 1:
        return {}

    def url(number: int) -> str:
        params = {**request.query_params, "page": str(number), "pageSize": str(size)}
        return str(request.url.include_query_params(**params))

    rels = []
    if page > 1:
        rels += [(1, "first"), (page - 1, "prev")]
    if page < last:
        rels += [(page + 1, "next"), (last, "last")]
    return {"Link": ", ".join(f'<{url(n)}>; rel="{rel}"' for n, rel in rels)}


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """Form fields and the first file of a multipart/form-data body (stdlib parser)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    file: tuple[str, bytes] | None = None
    if not message.is_multipart():
        raise SandboxError(400, "InvalidObject", "expected multipart/form-data")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename:
            file = file or (filename, data)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8")
    return fields, file


def build_app(sandbox: ConnectWiseSandbox) -> ASGIApp:
    """The full ASGI app: auth/failure gate in front of the REST routes and control API."""
    store = sandbox.store
    api = f"/{sandbox.codebase}apis/3.0"

    def paged(request: Request, table: str, extra: Any = None) -> Response:
        q = request.query_params
        page = max(1, _int(q.get("page"), 1, "page"))
        size = min(max(1, _int(q.get("pageSize"), 25, "pageSize")), 1000)
        rows, total = store.query(
            table, q.get("conditions"), q.get("orderBy"), page=page, page_size=size, extra=extra
        )
        return JSONResponse(rows, headers=_link(request, page, size, total))

    def rid(request: Request, name: str = "id") -> int:
        return int(request.path_params[name])

    async def body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            raise SandboxError(400, "InvalidObject", "body is not valid JSON") from None

    async def companies(request: Request) -> Response:
        return paged(request, "companies")

    async def company(request: Request) -> Response:
        return JSONResponse(store.get("companies", rid(request)))

    async def contacts(request: Request) -> Response:
        return paged(request, "contacts")

    async def contact(request: Request) -> Response:
        return JSONResponse(store.get("contacts", rid(request)))

    async def tickets(request: Request) -> Response:
        return paged(request, "tickets")

    async def ticket(request: Request) -> Response:
        if request.method == "PATCH":
            ops = await body(request)
            updated = store.patch_ticket(rid(request), ops, member=API_MEMBER_ID)
            return JSONResponse(updated)
        return JSONResponse(store.get("tickets", rid(request)))

    async def notes(request: Request) -> Response:
        tid = rid(request)
        if request.method == "POST":
            note = store.add_note(tid, await body(request), member=API_MEMBER)
            return JSONResponse(note, 201)
        rows = store.ticket_notes(tid)
        q = request.query_params
        if (q.get("orderBy") or "").replace(" ", "").lower() == "iddesc":
            rows.reverse()
        size = min(_int(q.get("pageSize"), 25, "pageSize"), 1000)
        return JSONResponse(rows[:size])

    async def boards(request: Request) -> Response:
        return JSONResponse(list(store.boards.values()))

    async def statuses(request: Request) -> Response:
        board_id = rid(request)
        if board_id not in store.statuses:
            raise SandboxError(404, "NotFound", f"board {board_id} not found")
        return JSONResponse(store.statuses[board_id])

    async def agreements(request: Request) -> Response:
        return paged(request, "agreements")

    async def agreement(request: Request) -> Response:
        return JSONResponse(store.get("agreements", rid(request)))

    async def documents(request: Request) -> Response:
        if request.method == "POST":
            fields, file = _multipart(request.headers.get("content-type", ""), await request.body())
            if file is None:
                raise SandboxError(400, "InvalidObject", "a file part is required", "file")
            doc = store.add_document(fields, file[0], file[1], member=API_MEMBER_ID)
            return JSONResponse(doc, 201)
        q = request.query_params
        rtype, rec = q.get("recordType"), q.get("recordId")

        def match(r: dict[str, Any]) -> bool:
            return (rtype is None or r["recordType"] == rtype) and (
                rec is None or str(r["recordId"]) == rec
            )

        return paged(request, "documents", match)

    async def download(request: Request) -> Response:
        doc = store.get("documents", rid(request))
        return Response(
            store.contents[doc["id"]],
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{doc["fileName"]}"'},
        )

    async def callbacks(request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse(store.add_callback(await body(request), member=API_MEMBER), 201)
        return paged(request, "callbacks")

    async def callback(request: Request) -> Response:
        if request.method == "DELETE":
            store.delete("callbacks", rid(request))
            return Response(status_code=204)
        return JSONResponse(store.get("callbacks", rid(request)))

    async def callback_key(request: Request) -> Response:
        if request.query_params.get("id") != sandbox.key_id:
            raise SandboxError(404, "NotFound", "unknown key")
        return JSONResponse({"signing_key": sandbox.signing_key})

    async def company_info(request: Request) -> Response:
        if request.path_params["company"].lower() != sandbox.company_id.lower():
            return JSONResponse(None)
        return JSONResponse(
            {
                "CompanyName": sandbox.company_id,
                "Codebase": sandbox.codebase,
                "VersionCode": "v2022.1",
                "VersionNumber": "v4.6.0",
                "CompanyID": sandbox.company_id,
                "IsCloud": False,
            }
        )

    routes = [
        Route(f"{api}/company/companies", companies),
        Route(f"{api}/company/companies/{{id:int}}", company),
        Route(f"{api}/company/contacts", contacts),
        Route(f"{api}/company/contacts/{{id:int}}", contact),
        Route(f"{api}/service/tickets", tickets),
        Route(f"{api}/service/tickets/{{id:int}}", ticket, methods=["GET", "PATCH"]),
        Route(f"{api}/service/tickets/{{id:int}}/notes", notes, methods=["GET", "POST"]),
        Route(f"{api}/service/boards", boards),
        Route(f"{api}/service/boards/{{id:int}}/statuses", statuses),
        Route(f"{api}/finance/agreements", agreements),
        Route(f"{api}/finance/agreements/{{id:int}}", agreement),
        Route(f"{api}/system/documents", documents, methods=["GET", "POST"]),
        Route(f"{api}/system/documents/{{id:int}}/download", download),
        Route(f"{api}/system/callbacks", callbacks, methods=["GET", "POST"]),
        Route(f"{api}/system/callbacks/{{id:int}}", callback, methods=["GET", "DELETE"]),
        Route(f"/{sandbox.codebase}system/callbackkey/index.rails", callback_key),
        Route("/login/companyinfo/{company}", company_info),
    ]

    async def sandbox_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SandboxError)
        return JSONResponse(exc.body, exc.status)

    async def query_error(request: Request, exc: Exception) -> Response:
        return error(400, "InvalidParameter", str(exc))

    async def bad_input(request: Request, exc: Exception) -> Response:
        return error(400, "InvalidObject", f"bad input ({type(exc).__name__})")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error(status, "NotFound" if status == 404 else "Error", "no such resource")

    app = Starlette(
        routes=routes + control_routes(sandbox),
        exception_handlers={
            SandboxError: sandbox_error,
            QueryError: query_error,
            KeyError: bad_input,
            TypeError: bad_input,
            ValueError: bad_input,
            404: http_error,
            405: http_error,
        },
    )
    # the kit's gate (counting, slow mode, forced failures) runs before our auth, as a
    # vendor's rate limiter and load balancer answer before it checks credentials
    return FaultGate(_Auth(app, sandbox), sandbox.faults, error=forced_error)


def forced_error(failure: Failure) -> Response:
    """A forced failure in ConnectWise's error shape (with ``Retry-After`` when set)."""
    extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
    code = "TooManyRequests" if failure.status == 429 else "ServerError"
    return error(failure.status, code, "forced by the sandbox", extra)


class _Auth:
    """Pure ASGI middleware: ConnectWise's Basic auth and ``clientId`` on API paths."""

    def __init__(self, app: ASGIApp, sandbox: ConnectWiseSandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        creds = f"{sandbox.company_id}+{sandbox.public_key}:{sandbox.private_key}"
        self.expected_auth = b"Basic " + base64.b64encode(creds.encode())
        self.public_prefixes = (f"/{sandbox.codebase}system/callbackkey/", "/login/",
                                CONTROL_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.public_prefixes):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        client_id = headers.get(b"clientid", b"").decode("latin-1")
        if not hmac.compare_digest(auth, self.expected_auth):
            await error(401, "Unauthorized", "bad credentials")(scope, receive, send)
            return
        if client_id != self.sandbox.client_id:
            await error(401, "Unauthorized", "clientId is required")(scope, receive, send)
            return
        await self.app(scope, receive, send)
