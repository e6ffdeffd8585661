"""Registering our ticket webhook with Autotask (idempotent), and removing it.

Order matters: the webhook is created *inactive*, its fields and the excluded resource
(our API user, so our own notes and status changes do not echo back) are added, and only
then is it activated — no delivery can happen before the exclusion exists.
"""

from __future__ import annotations

from typing import Any

import structlog

from connectors.autotask.client import AutotaskClient, Record
from connectors.autotask.config import AutotaskConfig
from connectors.base import NotFound, PermanentError

log = structlog.get_logger()

NAME_MAX, URL_MAX = 50, 500
DEACTIVATED = "deactivated=1"


def deactivation_url(url: str) -> str:
    """Where Autotask tells us it disabled the webhook (logged, never trusted)."""
    return url + ("&" if "?" in url else "?") + DEACTIVATED


class WebhookRegistrar:
    """Creates, reconciles and deletes the ``TicketWebhooks`` entry for one URL."""

    def __init__(self, client: AutotaskClient, config: AutotaskConfig, name: str) -> None:
        self.client = client
        self.config = config
        self.name = name

    def _existing(self, url: str) -> list[Record]:
        return self.client.query_all(
            "TicketWebhooks", [{"op": "eq", "field": "webhookUrl", "value": url}])

    def field_ids(self) -> dict[str, int]:
        """Ticket field name (lower-case) → webhook ``fieldID`` (from the ``fieldID``
        picklist of ``TicketWebhookFields``)."""
        out: dict[str, int] = {}
        for field in self.client.entity_fields("TicketWebhookFields"):
            if str(field.get("name", "")).lower() != "fieldid":
                continue
            for item in field.get("picklistValues") or []:
                value, label = item.get("value"), item.get("label")
                if isinstance(label, str) and str(value).isdigit():
                    out[label.lower()] = int(str(value))
        return out

    def _desired(self, url: str) -> dict[str, Any]:
        if self.config.webhook_secret is None:
            raise PermanentError("webhook_secret is not configured", source=self.name)
        if len(url) > URL_MAX or not url.startswith(("https://", "http://")):
            raise PermanentError("webhook URL must be http(s) and at most 500 characters",
                                 source=self.name)
        body: dict[str, Any] = {
            "name": f"msphub {self.name}"[:NAME_MAX],
            "webhookUrl": url,
            "deactivationUrl": deactivation_url(url)[:URL_MAX],
            "secretKey": self.config.webhook_secret.get_secret_value(),
            "isSubscribedToCreateEvents": True,
            "isSubscribedToUpdateEvents": True,
            "isSubscribedToDeleteEvents": False,
            "sendThresholdExceededNotification": True,
        }
        if self.config.notification_email:
            body["notificationEmailAddress"] = self.config.notification_email
        return body

    def register(self, url: str, resource_id: int | None) -> list[str]:
        """Ensure exactly one active, ready ticket webhook for ``url``; returns its id.

        An entry for ``url`` that is inactive, not ready or a duplicate is deleted and
        made again (its fields and exclusions are not worth diffing).
        """
        desired = self._desired(url)
        kept: str | None = None
        for entry in self._existing(url):
            good = entry.get("isActive") and entry.get("isReady") is not False and \
                entry.get("name") == desired["name"]
            if good and kept is None:
                kept = str(entry.get("id"))
            else:
                self._delete(entry)
        if kept is not None:
            return [kept]
        hook_id = self.client.create("TicketWebhooks", {**desired, "isActive": False})
        self._add_fields(hook_id)
        if resource_id is not None:
            self.client.create(f"TicketWebhooks/{hook_id}/ExcludedResources",
                               {"webhookID": hook_id, "resourceID": resource_id})
        self.client.update("TicketWebhooks", {"id": hook_id, "isActive": True})
        log.info("autotask_webhook_registered", source=self.name, id=hook_id,
                 excluded_resource=resource_id)
        return [str(hook_id)]

    def _add_fields(self, hook_id: int) -> None:
        ids = self.field_ids()
        wanted = [(f, True, False) for f in self.config.webhook_fields] + [
            (f, False, True) for f in self.config.webhook_display_fields
            if f not in self.config.webhook_fields]
        missing = [f for f, _, _ in wanted if f.lower() not in ids]
        if missing:
            raise PermanentError(f"Autotask has no webhook field {missing[0]!r}",
                                 source=self.name)
        for field, subscribed, display in wanted:
            self.client.create(f"TicketWebhooks/{hook_id}/Fields", {
                "webhookID": hook_id, "fieldID": ids[field.lower()],
                "isSubscribedField": subscribed, "isDisplayAlwaysField": display})

    def remove(self, url: str) -> int:
        """Delete every ticket webhook for ``url``; returns how many were deleted."""
        return sum(self._delete(entry) for entry in self._existing(url))

    def _delete(self, entry: Record) -> bool:
        hook_id = entry.get("id")
        if not isinstance(hook_id, int):
            return False
        try:
            self.client.delete(f"TicketWebhooks/{hook_id}")
        except NotFound:
            return False
        return True
