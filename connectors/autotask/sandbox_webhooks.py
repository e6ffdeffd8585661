"""The Autotask sandbox's ticket webhooks: the ``TicketWebhooks`` routes (create, fields,
excluded resources, activate, delete) and signed Create/Update deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from typing import Any

from starlette.responses import JSONResponse, Response

from connectors.autotask.sandbox_store import WEBHOOK_FIELDS, Record, SandboxStore
from connectors.sandbox import WebhookDispatcher

_ESCAPED = {"&": "\\u0026", "<": "\\u003C", ">": "\\u003E", "'": "\\u0027", "+": "\\u002B",
            "`": "\\u0060"}
_LOWER_HEX = re.compile(r"\\u([0-9a-f]{4})")
_LIMITS = (("name", 50), ("secretKey", 64), ("webhookUrl", 500), ("deactivationUrl", 500))
_CHILDREN = {"fields": "ticketwebhookfields",
             "excludedresources": "ticketwebhookexcludedresources"}


def errors(status: int, *messages: str, headers: dict[str, str] | None = None) -> Response:
    """Autotask's error shape: ``{"errors": [...]}``."""
    return JSONResponse({"errors": list(messages)}, status, headers)


def dotnet_body(payload: Any) -> bytes:
    """The bytes Autotask signs: JSON with non-ASCII and ``&<>'+` `` as ``\\u + four hex digits``
    (upper-case hex) and ``\\"`` as ``\\u0022`` (an independent re-implementation, so
    tests of the connector's verifier are not circular)."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    text = _LOWER_HEX.sub(lambda m: "\\u" + m.group(1).upper(), text)
    text = text.replace('\\"', "\\u0022")
    for char, escape in _ESCAPED.items():
        text = text.replace(char, escape)
    return text.encode("ascii")


class WebhookSender:
    """Turns ticket changes into deliveries to the active, ready webhooks."""

    def __init__(self, store: SandboxStore, dispatcher: WebhookDispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.sign_raw = False  # True: sign the bytes on the wire instead of .NET's form
        self._lock = threading.Lock()
        self._sequence = 0

    def on_ticket(self, action: str, ticket: Record, changed: set[str], actor: int) -> None:
        """A ticket changed: deliver to each webhook subscribed to the change, unless the
        actor is one of its excluded resources (an Update needs a subscribed field)."""
        for hook in self.store.rows("ticketwebhooks"):
            if not (hook.get("isActive") and hook.get("isReady")):
                continue
            if not hook.get(f"isSubscribedTo{action}Events"):
                continue
            hid = hook["id"]
            excluded = {r.get("resourceID") for r in
                        self.store.webhook_children("ticketwebhookexcludedresources", hid)}
            if actor in excluded:
                continue
            fields = self.store.webhook_children("ticketwebhookfields", hid)
            names = {WEBHOOK_FIELDS.get(int(f.get("fieldID") or 0), ""): f for f in fields}
            subscribed = {n for n, f in names.items() if f.get("isSubscribedField")}
            if action == "Update" and not subscribed & changed:
                continue
            shown = {n: ticket.get(n) for n in names if n}
            self.deliver(hook, action, ticket["id"], shown, actor)

    def deliver(self, hook: Record, action: str, entity_id: int, fields: dict[str, Any],
                actor: int) -> None:
        """POST one signed payload to the hook's URL (drop/duplicate switches applied)."""
        wire, headers = self.delivery(hook, action, entity_id, fields, actor)
        self.dispatcher.send(str(hook["webhookUrl"]), wire, headers)

    def delivery(self, hook: Record, action: str, entity_id: int, fields: dict[str, Any],
                 actor: int) -> tuple[bytes, dict[str, str]]:
        """The body on the wire and its headers for one delivery of ``hook`` (the next
        sequence number), signed with the hook's ``secretKey``."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        payload = {"Action": action, "Guid": hook["webhookGUID"], "EntityType": "Ticket",
                   "Id": entity_id, "Fields": fields, "EventTime": self.store.now(),
                   "SequenceNumber": sequence, "PersonID": actor}
        wire = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        signed = wire if self.sign_raw else dotnet_body(payload)
        return wire, signed_headers(signed, str(hook.get("secretKey") or ""))


def signed_headers(signed: bytes, secret: str) -> dict[str, str]:
    """The headers of a delivery whose signed form is ``signed``: ``X-Hook-Signature``."""
    digest = hmac.new(secret.encode(), signed, hashlib.sha1)
    return {"content-type": "application/json",
            "x-hook-signature": "sha1=" + base64.b64encode(digest.digest()).decode()}


def webhook_route(store: SandboxStore, method: str, parts: list[str], body: Any) -> Response:
    """``/TicketWebhooks[...]``: create, activate (PATCH), delete, read, add children."""
    if len(parts) == 1 and isinstance(body, dict):
        if method == "POST":
            for key, limit in _LIMITS:
                if not body.get(key) or len(str(body[key])) > limit:
                    return errors(500, f"{key} is required and at most {limit} characters")
            return JSONResponse({"itemId": store.new_webhook(body)["id"]})
        if method == "PATCH":
            return _patch(store, body)
    if len(parts) >= 2 and parts[1].isdigit():
        return _one(store, method, int(parts[1]), parts[2:], body)
    return errors(405, "unsupported webhook request")


def _patch(store: SandboxStore, body: dict[str, Any]) -> Response:
    hook_id = body.get("id")
    with store.lock:
        hook = store.tables["ticketwebhooks"].get(hook_id) if isinstance(hook_id, int) else None
        if hook is None:
            return errors(500, "Webhook not found")
        hook.update({k: v for k, v in body.items() if k not in ("id", "webhookGUID")})
    return JSONResponse({"itemId": hook_id})


def _one(store: SandboxStore, method: str, hook_id: int, rest: list[str],
         body: Any) -> Response:
    if store.get("ticketwebhooks", hook_id) is None:
        return errors(500 if method == "DELETE" else 404, "Webhook not found")
    if not rest and method == "DELETE":
        store.delete_webhook(hook_id)
        return JSONResponse({"itemId": hook_id})
    if not rest and method == "GET":
        return JSONResponse({"item": store.get("ticketwebhooks", hook_id)})
    table = _CHILDREN.get(rest[0]) if len(rest) == 1 else None
    if method != "POST" or table is None or not isinstance(body, dict):
        return errors(405, "unsupported webhook child")
    if table == "ticketwebhookfields" and body.get("fieldID") not in WEBHOOK_FIELDS:
        return errors(500, "fieldID is not a valid webhook field")
    if table == "ticketwebhookexcludedresources" and \
            store.get("resources", int(body.get("resourceID") or 0)) is None:
        return errors(500, "resourceID is not a resource")
    child = store.add_webhook_child(table, hook_id, body)
    return JSONResponse({"itemId": child["id"]})
