"""NinjaOne REST client (API v2): client-credentials tokens per scope, paging, JSON (HTTP only).

Two tokens, each with only the scopes its calls need: ``monitoring`` for every read, and
``monitoring management`` for configuring the webhook (``PUT``/``DELETE /v2/webhook``).

Paging differs per endpoint family (all from the spec):

* ``/v2/activities``: newest first; ``newerThan=<id>`` keeps ids above it and
  ``olderThan=<id>`` ids below it. The spec's parameter *descriptions* say the opposite
  of their names; we go by the names (homotechsual's client and NinjaOne's own examples)
  and refuse a page that contradicts the bounds we asked for (:class:`ActivitiesPage`).
* organizations and devices: ``after=<last id of the previous page>``, until a short page.
* ``/v2/queries/...`` and ``/v2/backup/jobs``: a named server-side cursor
  (``{"cursor": {"name", "offset", "count", "expires"}, "results": [...]}``); the next page
  is ``cursor=<name>``, until a short or empty page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.base import PermanentError, RateLimited, RequestBudget
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send
from connectors.ninjaone.config import READ_SCOPE, WEBHOOK_SCOPE, NinjaOneConfig
from connectors.oauth import ClientCredentials, OAuth2Auth, TokenStore

Record = dict[str, Any]
MAX_LISTING_PAGES = 10_000  # organizations, devices, query reports: a runaway guard
TOKEN_LIFE = 3600.0  # NinjaOne's access tokens live an hour (vendor notes §2.1)


@dataclass(frozen=True)
class ActivitiesPage:
    """One ``/v2/activities`` answer: its activities, the account's newest id, the clock."""

    items: list[Record]
    last_activity_id: int | None
    server_time: datetime | None


def server_time(response: httpx.Response) -> datetime | None:
    """NinjaOne's clock from the ``Date`` header, when present and readable."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _activity_id(item: Record) -> int:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise PermanentError("an activity has no usable integer id")
    return value


def check_bounds(items: list[Record], newer_than: int | None, older_than: int | None) -> None:
    """Refuse activities outside ``(newer_than, older_than)``: the API did not mean what
    we asked (swapped or ignored bounds would silently skip or repeat activities)."""
    for item in items:
        ident = _activity_id(item)
        if (newer_than is not None and ident <= newer_than) or (
                older_than is not None and ident >= older_than):
            raise PermanentError(
                f"activity {ident} is outside the requested range "
                f"(newerThan={newer_than}, olderThan={older_than}); the API's paging "
                "parameters do not mean what this connector assumes")


class NinjaOneClient:
    """Thin HTTP wrapper over the instance's ``/v2`` API; every call goes through ``send``."""

    def __init__(
        self,
        config: NinjaOneConfig,
        *,
        source: str,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        token_store: TokenStore | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._budget = budget
        self._retry = retry
        self.read_auth = self._auth(READ_SCOPE, transport, token_store)
        self.admin_auth = self._auth(WEBHOOK_SCOPE, transport, None)
        headers = {"Accept": "application/json"}
        self._http = make_client(config.instance_url, auth=self.read_auth, headers=headers,
                                 timeout=config.timeout_seconds, transport=transport,
                                 source=source)
        self._admin = make_client(config.instance_url, auth=self.admin_auth, headers=headers,
                                  timeout=config.timeout_seconds, transport=transport,
                                  source=source)

    def _auth(self, scope: str, transport: httpx.BaseTransport | None,
              store: TokenStore | None) -> OAuth2Auth:
        grant = ClientCredentials(client_id=self.config.client_id,
                                  client_secret=self.config.client_secret, scope=scope)
        return OAuth2Auth(self.config.token_url, grant, store=store, source=self.source,
                          transport=transport, timeout=self.config.timeout_seconds,
                          default_expires_in=TOKEN_LIFE, retry=self._retry)

    def close(self) -> None:
        """Close the API and token connection pools."""
        for closable in (self._http, self._admin, self.read_auth, self.admin_auth):
            closable.close()

    def _send(self, method: str, url: str, *, admin: bool = False,
              **kwargs: Any) -> httpx.Response:
        try:
            return send(self._admin if admin else self._http, method, url, source=self.source,
                        budget=self._budget, policy=self._retry, **kwargs)
        except RateLimited as exc:
            # A 429 from the token endpoint arrives here without having paused the source.
            if self._budget is not None and exc.retry_after:
                self._budget.pause(exc.retry_after)
            raise

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"invalid JSON from {response.request.url.path}",
                                 source=self.source, status=response.status_code) from None

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET one resource (``/v2/...``) and return its JSON."""
        return self._json(self._send("GET", path, params=params or {}))

    def get_object(self, path: str, params: dict[str, Any] | None = None) -> Record:
        """GET one resource that must be a JSON object."""
        body = self.get(path, params)
        if not isinstance(body, dict):
            raise PermanentError(f"expected a JSON object from {path}", source=self.source)
        return body

    def get_list(self, path: str, params: dict[str, Any] | None = None) -> list[Record]:
        """GET one resource that must be a JSON array of objects."""
        body = self.get(path, params)
        if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
            raise PermanentError(f"expected a list of objects from {path}", source=self.source)
        return body

    # -- activities and alerts ----------------------------------------------------------

    def activities(self, *, newer_than: int | None = None, older_than: int | None = None,
                   page_size: int | None = None, df: str | None = None,
                   series_uid: str | None = None, any_class: bool = False) -> ActivitiesPage:
        """One page of activities (newest first) with ids in ``(newer_than, older_than)``;
        of the configured ``activity_class`` unless ``any_class``.

        Raises:
            PermanentError: the answer is not ``{lastActivityId, activities: [...]}``, or
                holds an activity outside the requested bounds.
        """
        params: dict[str, Any] = {"pageSize": page_size or self.config.page_size}
        if self.config.activity_class != "ALL" and not any_class:
            params["class"] = self.config.activity_class
        if newer_than is not None:
            params["newerThan"] = newer_than
        if older_than is not None:
            params["olderThan"] = older_than
        if df:
            params["df"] = df
        if series_uid:
            params["seriesUid"] = series_uid
        response = self._send("GET", "/v2/activities", params=params)
        body = self._json(response)
        if not isinstance(body, dict):
            raise PermanentError("expected an object from /v2/activities", source=self.source)
        items = body.get("activities") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise PermanentError("'activities' is not a list of objects", source=self.source)
        check_bounds(items, newer_than, older_than)
        last = body.get("lastActivityId")
        return ActivitiesPage(items, last if isinstance(last, int) and not isinstance(
            last, bool) else None, server_time(response))

    def activity(self, activity_id: int) -> tuple[Record | None, int | None]:
        """The activity with this id (or None) and the account's newest activity id."""
        page = self.activities(newer_than=activity_id - 1, older_than=activity_id + 1,
                               page_size=10, any_class=True)
        found = next((a for a in page.items if a.get("id") == activity_id), None)
        return found, page.last_activity_id

    def alerts(self, *, df: str | None = None, source_type: str | None = None) -> list[Record]:
        """Active alerts (triggered conditions) now; NinjaOne returns one unpaged array."""
        params = {k: v for k, v in (("df", df), ("sourceType", source_type)) if v}
        return self.get_list("/v2/alerts", params)

    # -- organizations and devices ------------------------------------------------------

    def _after_pages(self, path: str, params: dict[str, Any] | None = None,
                     page_size: int = 200) -> Iterator[Record]:
        """Every record of an ``after=<last id>`` listing (stops on a short page)."""
        after: int | None = None
        for _ in range(MAX_LISTING_PAGES):
            query = {**(params or {}), "pageSize": page_size}
            if after is not None:
                query["after"] = after
            items = self.get_list(path, query)
            yield from items
            ids = [i.get("id") for i in items]
            if len(items) < page_size or not all(isinstance(i, int) for i in ids):
                return
            nxt = max(i for i in ids if isinstance(i, int))
            if after is not None and nxt <= after:
                raise PermanentError(f"{path} paging did not advance", source=self.source)
            after = nxt
        raise PermanentError(f"{path} has more than {MAX_LISTING_PAGES} pages",
                             source=self.source)

    def organizations(self) -> Iterator[Record]:
        """Every organization (brief: id, name, description, nodeApprovalMode, fields …)."""
        return self._after_pages("/v2/organizations")

    def organization(self, org_id: int) -> Record:
        """One organization in detail."""
        return self.get_object(f"/v2/organization/{int(org_id)}")

    def devices(self, *, df: str | None = None) -> Iterator[Record]:
        """Every device matching the device filter, with references (detailed listing)."""
        return self._after_pages("/v2/devices-detailed", {"df": df} if df else None)

    def device(self, device_id: int) -> Record:
        """One device (organizationId, references.organization.name, systemName …)."""
        return self.get_object(f"/v2/device/{int(device_id)}")

    # -- query reports ------------------------------------------------------------------

    def report(self, path: str, params: dict[str, Any] | None = None,
               page_size: int = 500) -> Iterator[Record]:
        """Every ``results`` record of a query report, following the named cursor."""
        query: dict[str, Any] = {**{k: v for k, v in (params or {}).items()
                                    if v is not None}, "pageSize": page_size}
        seen: set[tuple[str, int]] = set()
        for _ in range(MAX_LISTING_PAGES):
            body = self.get_object(path, query)
            results = body.get("results") or []
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise PermanentError(f"'results' of {path} is not a list of objects",
                                     source=self.source)
            yield from results
            cursor = body.get("cursor")
            name = cursor.get("name") if isinstance(cursor, dict) else None
            if len(results) < page_size or not isinstance(name, str) or not name:
                return
            offset = cursor.get("offset") if isinstance(cursor, dict) else None
            mark = (name, offset if isinstance(offset, int) else -1)
            if mark in seen:
                raise PermanentError(f"{path} cursor repeated", source=self.source)
            seen.add(mark)
            query = {"cursor": name, "pageSize": page_size}
        raise PermanentError(f"{path} has more than {MAX_LISTING_PAGES} pages",
                             source=self.source)

    # -- the webhook (management scope) ---------------------------------------------------

    def put_webhook(self, configuration: Record) -> None:
        """Create or replace this API client's webhook (``PUT /v2/webhook``, 204)."""
        self._send("PUT", "/v2/webhook", admin=True, json=configuration)

    def delete_webhook(self) -> None:
        """Disable this API client's webhook (``DELETE /v2/webhook``)."""
        self._send("DELETE", "/v2/webhook", admin=True)
