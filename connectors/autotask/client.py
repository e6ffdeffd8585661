"""Autotask REST client: zone discovery, the API-user headers, query paging and JSON
(HTTP only, no events).

Every tenant lives in one zone (``webservices3.autotask.net`` …). The zone is looked up
without credentials (``GET /atservicesrest/v1.0/zoneInformation?user=<user>``), cached,
and looked up again once after a 401: a tenant moved to another zone answers 401 on the
old one, and only a lookup that names a *different* zone earns a retry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from connectors.autotask.config import AutotaskConfig
from connectors.autotask.throttle import (
    EndpointLimiter,
    ThresholdGovernor,
    ThresholdReading,
    ThrottledTransport,
)
from connectors.base import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PermanentError,
    RequestBudget,
    TransientError,
)
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send

log = structlog.get_logger()
Record = dict[str, Any]
ZONE_PATH = "/atservicesrest/v1.0/zoneInformation"
API_VERSION = "V1.0"


class AutotaskClient:
    """Thin HTTP wrapper over ``{zone}V1.0``; every call goes through ``send``."""

    def __init__(
        self,
        config: AutotaskConfig,
        *,
        source: str,
        limiter: EndpointLimiter,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        governor: ThresholdGovernor | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._budget = budget
        self.governor = governor
        self._retry = retry
        self._transport = ThrottledTransport(transport or httpx.HTTPTransport(), limiter)
        self._lock = threading.Lock()
        self._zone: str | None = None  # the API root, e.g. https://webservices3…/V1.0
        self._http: httpx.Client | None = None
        # the lookup needs no credentials and is not thread-limited
        self._plain = make_client(config.zone_lookup_url, timeout=config.timeout_seconds,
                                  transport=transport, source=source)
        self.zone_lookups = 0
        self.web_url: str | None = None  # the zone's web UI (for ticket links)

    def close(self) -> None:
        """Close the connection pools."""
        with self._lock:
            if self._http is not None:
                self._http.close()
        self._plain.close()

    # -- zone ---------------------------------------------------------------------------

    def lookup_zone(self) -> str:
        """Ask zoneInformation where the API user's database lives; returns the API root.

        Raises:
            AuthFailed: the lookup does not know the user (Autotask answers 500).
            PermanentError: the zone URL is not an Autotask host (or not allowed).
        """
        self.zone_lookups += 1
        try:
            response = send(self._plain, "GET", ZONE_PATH, source=self.source,
                            policy=self._retry, params={"user": self.config.username})
        except PermanentError as exc:
            raise AuthFailed("zone lookup refused the API user name", source=self.source,
                             status=exc.status) from exc
        except NotFound as exc:
            raise AuthFailed("zone lookup does not know the API user", source=self.source,
                             status=exc.status) from exc
        except TransientError as exc:
            if exc.status != 500:
                raise
            # Autotask's answer to a user name it does not know (after our retries)
            raise AuthFailed("zone lookup does not know the API user", source=self.source,
                             status=500) from exc
        body = self._json(response)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not self.config.zone_allowed(url):
            raise PermanentError("zoneInformation returned no usable Autotask URL",
                                 source=self.source)
        web = body.get("webUrl")
        self.web_url = web if isinstance(web, str) and web.startswith("http") else None
        return f"{url.rstrip('/')}/{API_VERSION}"

    @property
    def api_root(self) -> str:
        """The cached API root (looked up on first use)."""
        return self._client()[1]

    def _client(self) -> tuple[httpx.Client, str]:
        with self._lock:
            if self._http is not None and self._zone is not None:
                return self._http, self._zone
        zone = self.lookup_zone()
        return self._use_zone(zone)

    def _use_zone(self, zone: str) -> tuple[httpx.Client, str]:
        with self._lock:
            if self._zone != zone or self._http is None:
                if self._http is not None:
                    self._http.close()
                self._http = make_client(
                    zone + "/",
                    headers={
                        "ApiIntegrationCode": self.config.integration_code.get_secret_value(),
                        "UserName": self.config.username,
                        "Secret": self.config.secret.get_secret_value(),
                        "Accept": "application/json",
                    },
                    timeout=self.config.timeout_seconds, transport=self._transport,
                    source=self.source)
                if self._zone is not None:
                    log.warning("autotask_zone_changed", source=self.source)
                self._zone = zone
            return self._http, zone

    # -- requests -----------------------------------------------------------------------

    def request(self, method: str, path: str, *, idempotent: bool | None = None,
                **kwargs: Any) -> httpx.Response:
        """Send one API request (``path`` relative to the API root, or an absolute URL on
        it); on a 401, look the zone up again and retry once if it moved."""
        http, zone = self._client()
        try:
            response = send(http, method, path, source=self.source, budget=self._budget,
                            policy=self._retry, idempotent=idempotent, **kwargs)
        except AuthFailed as exc:
            if exc.status != 401:
                raise
            fresh = self.lookup_zone()
            if fresh == zone:
                raise
            http, fresh = self._use_zone(fresh)
            if path.startswith(zone):
                path = fresh + path[len(zone):]
            response = send(http, method, path, source=self.source, budget=self._budget,
                            policy=self._retry, idempotent=idempotent, **kwargs)
        # after a request that got through: a refused one must surface its own error
        if self.governor is not None and self.governor.claim_read():
            self.read_threshold()
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"invalid JSON from {response.request.url.path}",
                                 source=self.source, status=response.status_code) from None

    def get_item(self, path: str) -> Record:
        """GET one record (``{"item": {...}}``); ``{"item": null}`` or 404 → NotFound."""
        body = self._json(self.request("GET", path))
        item = body.get("item") if isinstance(body, dict) else None
        if not isinstance(item, dict):
            raise NotFound(f"no record at {path.split('?')[0]}", source=self.source)
        return item

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and return the JSON."""
        return self._json(self.request("GET", path, params=dict(params or {})))

    def create(self, path: str, body: Mapping[str, Any]) -> int:
        """POST a new record; returns its ``itemId`` (not retried once it may have landed)."""
        answer = self._json(self.request("POST", path, json=dict(body)))
        return self._item_id(answer, path)

    def update(self, path: str, body: Mapping[str, Any]) -> int:
        """PATCH fields of a record (setting fields is idempotent: retried freely)."""
        answer = self._json(self.request("PATCH", path, json=dict(body), idempotent=True))
        return self._item_id(answer, path)

    def delete(self, path: str) -> None:
        """DELETE a record."""
        self.request("DELETE", path)

    def _item_id(self, answer: Any, path: str) -> int:
        item_id = answer.get("itemId") if isinstance(answer, dict) else None
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise PermanentError(f"{path.split('/')[0]} answer has no itemId",
                                 source=self.source)
        return item_id

    def query(self, entity: str, filters: list[Record], *,
              include_fields: list[str] | None = None,
              max_records: int | None = None) -> Iterator[tuple[list[Record], bool]]:
        """Yield ``(items, more)`` per page of ``POST {entity}/query``.

        A next page is ``pageDetails.nextPageUrl``, POSTed again with the same body (as
        Autotask expects); it must stay on the zone's API root and may not repeat.

        Raises:
            PermanentError: a next page URL leaves the API root or repeats.
        """
        body: Record = {"filter": filters,
                        "MaxRecords": min(500, max_records or self.config.page_size)}
        if include_fields:
            body["IncludeFields"] = include_fields
        url = f"{entity}/query"
        seen: set[str] = set()
        while True:
            page = self._json(self.request("POST", url, json=body, idempotent=True))
            items, next_url = self._page(page, entity)
            if not next_url:
                yield items, False
                return
            url = self._next(next_url)
            if url in seen:
                raise PermanentError("query page URL repeated", source=self.source)
            seen.add(url)
            yield items, True

    def query_all(self, entity: str, filters: list[Record], **kw: Any) -> list[Record]:
        """Every item of a query (for small lookups: picklist-sized results)."""
        return [item for items, _ in self.query(entity, filters, **kw) for item in items]

    def _page(self, page: Any, entity: str) -> tuple[list[Record], str | None]:
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise PermanentError(f"{entity} query answer has no items list", source=self.source)
        details = page.get("pageDetails") if isinstance(page.get("pageDetails"), dict) else {}
        next_url = details.get("nextPageUrl")
        return items, next_url if isinstance(next_url, str) and next_url else None

    def _next(self, link: str) -> str:
        """The absolute next-page URL, refused unless it is under our zone's API root."""
        zone = self.api_root
        parts, root = urlsplit(link), urlsplit(zone)
        same = (parts.scheme, parts.netloc.lower()) == (root.scheme, root.netloc.lower())
        if not same or not parts.path.lower().startswith(root.path.lower() + "/"):
            raise PermanentError("next page URL points outside the API", source=self.source)
        return link

    def entity_fields(self, entity: str) -> list[Record]:
        """``GET {entity}/entityInformation/fields``: field metadata with picklists."""
        body = self.get(f"{entity}/entityInformation/fields")
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list):
            raise PermanentError(f"{entity} field information has no fields", source=self.source)
        return [f for f in fields if isinstance(f, dict)]

    def threshold(self) -> ThresholdReading:
        """``GET ThresholdInformation`` (counts against the threshold itself)."""
        http, _ = self._client()
        response = send(http, "GET", "ThresholdInformation", source=self.source,
                        budget=self._budget, policy=self._retry)
        body = self._json(response)
        try:
            return ThresholdReading(
                threshold=int(body["externalRequestThreshold"]),
                used=int(body["currentTimeframeRequestCount"]),
                timeframe_minutes=int(body.get("requestThresholdTimeframe") or 60))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise PermanentError("ThresholdInformation has no usable counts",
                                 source=self.source) from None

    def read_threshold(self) -> ThresholdReading | None:
        """Read the database's use and hand it to the governor; a failed read is logged
        and the last reading kept (the threshold check must never stop real work)."""
        if self.governor is None:
            return None
        try:
            with self.governor.exempt():
                reading = self.threshold()
        except ConnectorError as exc:
            log.warning("autotask_threshold_unreadable", source=self.source,
                        error=type(exc).__name__)
            return None
        self.governor.record(reading)
        return reading
