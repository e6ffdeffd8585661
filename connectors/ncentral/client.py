"""N-central REST client (HTTP only): the token flow, ``pageNumber``/``pageSize`` paging.

Paging (spec, "API Pagination & Sorting"): ``pageNumber`` starts at 1, ``pageSize`` is
1..1000. Listings come in two envelopes: ``QueryResponse`` (active issues, devices:
``data, pageNumber, pageSize, itemCount, totalItems, totalPages, _links, _warning``) and
``ListResponse`` (customers, sites: ``data, totalItems`` only). We ask for page after page
until ``totalPages`` (or ``totalItems``, or a short page) says we have everything, and
report whether the listing is **complete**: it is not when the pages bound is reached,
the item count disagrees with ``totalItems``, or N-central sent a ``_warning``. A caller
never treats an incomplete listing as "these are all the issues".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from connectors.base import PermanentError, RateLimited, RequestBudget
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send
from connectors.ncentral.auth import NcentralAuth
from connectors.ncentral.config import NcentralConfig

log = structlog.get_logger()

Record = dict[str, Any]


@dataclass(frozen=True)
class Listing:
    """Every record of one listing, whether it is known to be complete, and N-central's
    clock (the first response's ``Date``)."""

    items: list[Record]
    complete: bool
    server_time: datetime | None
    reason: str | None = None  # why it is incomplete


def server_time(response: httpx.Response) -> datetime | None:
    """N-central's clock from the ``Date`` header, when present and readable."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


class NcentralClient:
    """Thin HTTP wrapper over ``{server_url}/api``; every call goes through ``send``."""

    def __init__(
        self,
        config: NcentralConfig,
        *,
        source: str,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.config = config
        self.source = source
        self._budget = budget
        self._retry = retry
        self.auth = NcentralAuth(config.api_root, config.user_api_token, source=source,
                                 transport=transport, timeout=config.timeout_seconds,
                                 retry=retry)
        self._http = make_client(config.api_root, auth=self.auth,
                                 headers={"Accept": "application/json"},
                                 timeout=config.timeout_seconds, transport=transport,
                                 source=source)

    def close(self) -> None:
        """Close the API and auth connection pools."""
        self._http.close()
        self.auth.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return send(self._http, method, url, source=self.source, budget=self._budget,
                        policy=self._retry, **kwargs)
        except RateLimited as exc:
            # A 429 from the auth endpoints arrives here without having paused the source.
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
        """GET one resource (``/customers`` …) and return its JSON."""
        return self._json(self._send("GET", path, params=params or {}))

    def _items(self, body: Any, path: str) -> tuple[list[Record], Record]:
        """A page's rows and its envelope; a bare JSON array is accepted as rows."""
        if isinstance(body, list):
            body = {"data": body}
        if not isinstance(body, dict):
            raise PermanentError(f"expected a page object from {path}", source=self.source)
        items = body.get("data")
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise PermanentError(f"'data' of {path} is not a list of objects",
                                 source=self.source)
        return items, body

    def list_all(self, path: str) -> Listing:
        """Every page of a listing, with whether it is known to be complete.

        Raises:
            PermanentError: a page is not ``{data: [...]}`` (or an array), answers
                another page than the one asked for, or repeats the page before it (a
                server ignoring ``pageNumber`` would otherwise be read to the bound).
        """
        size = self.config.page_size
        items: list[Record] = []
        when: datetime | None = None
        warning: str | None = None
        total: int | None = None
        previous: list[Record] = []
        for number in range(1, self.config.max_pages + 1):
            response = self._send("GET", path, params={"pageNumber": number, "pageSize": size})
            when = when or server_time(response)
            rows, body = self._items(self._json(response), path)
            answered = _count(body.get("pageNumber"))
            if answered is not None and answered != number:
                raise PermanentError(f"{path} answered page {answered} for page {number}",
                                     source=self.source)
            if rows and rows == previous:
                raise PermanentError(f"{path} page {number} repeats the page before it",
                                     source=self.source)
            previous = rows
            if isinstance(body.get("_warning"), str) and body["_warning"].strip():
                warning = body["_warning"].strip()[:200]
            items.extend(rows)
            total = _count(body.get("totalItems"))
            pages = _count(body.get("totalPages"))
            if pages is not None:
                more = number < pages
            elif total is not None:
                more = len(items) < total and bool(rows)
            else:
                more = len(rows) >= size
            if not more:
                break
        else:
            return Listing(items, False, when, f"more than {self.config.max_pages} pages")
        if warning is not None:
            return Listing(items, False, when, f"N-central warned: {warning}")
        if total is not None and len(items) != total:
            return Listing(items, False, when, f"{len(items)} rows of {total}")
        return Listing(items, True, when)

    # -- resources ------------------------------------------------------------------------

    def customers(self) -> Listing:
        """Every customer the API user can see (``GET /customers``)."""
        return self.list_all("/customers")

    def sites(self) -> Listing:
        """Every site the API user can see (``GET /sites``)."""
        return self.list_all("/sites")

    def devices(self, org_unit_id: int | None = None) -> Listing:
        """Devices of the user's view, or of one customer/site org unit."""
        if org_unit_id is None:
            return self.list_all("/devices")
        return self.list_all(f"/org-units/{int(org_unit_id)}/devices")

    def active_issues(self, org_unit_id: int) -> Listing:
        """Active issues of one customer or site (``GET /org-units/{id}/active-issues``)."""
        return self.list_all(f"/org-units/{int(org_unit_id)}/active-issues")
