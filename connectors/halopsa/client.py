"""HaloPSA REST client: OAuth2 client credentials, Halo's paging, array POSTs (HTTP only).

Paging uses Halo's own parameter names — ``pageinate=true`` (sic), ``page_size``,
``page_no`` (1-based) — and reads ``record_count`` and the listing's plural key. Halo
ignores query parameters it does not know and then answers with *every* record, so a
page longer than ``page_size`` is refused (``PermanentError``) rather than trusted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import PermanentError, RateLimited, RequestBudget
from connectors.halopsa.config import HaloPSAConfig
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send
from connectors.oauth import ClientCredentials, OAuth2Auth, TokenStore

Record = dict[str, Any]
# Refresh five minutes before expiry (halonet does the same); Halo tokens live an hour.
REFRESH_MARGIN = 300.0
DEFAULT_TOKEN_LIFE = 3600.0


@dataclass(frozen=True)
class ApiPage:
    """One page of a listing: its records and whether another page follows."""

    items: list[Record]
    more: bool


def check_id(value: object, what: str) -> int:
    """A positive record id safe to put in a URL path; else PermanentError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PermanentError(f"{what} is not a Halo id")
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) < 1:
        raise PermanentError(f"{what} is not a Halo id")
    return int(text)


class HaloPSAClient:
    """Thin HTTP wrapper over ``{url}/api``; every call goes through ``send``."""

    def __init__(
        self,
        config: HaloPSAConfig,
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
        grant = ClientCredentials(client_id=config.client_id, client_secret=config.client_secret,
                                  scope=config.scope)
        self.auth = OAuth2Auth(
            config.token_url, grant, store=token_store, source=source, transport=transport,
            timeout=config.timeout_seconds, refresh_margin=REFRESH_MARGIN,
            default_expires_in=DEFAULT_TOKEN_LIFE, retry=retry,
        )
        self._http = make_client(
            config.api_root, auth=self.auth, headers={"Accept": "application/json"},
            timeout=config.timeout_seconds, transport=transport, source=source,
        )

    def close(self) -> None:
        """Close the API and token connection pools."""
        self._http.close()
        self.auth.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return send(self._http, method, url, source=self.source, budget=self._budget,
                        policy=self._retry, **kwargs)
        except RateLimited as exc:
            # a 429 from the token endpoint arrives here without having paused the source
            if self._budget is not None and exc.retry_after:
                self._budget.pause(exc.retry_after)
            raise

    def _json(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"invalid JSON from {response.request.url.path}",
                                 source=self.source, status=response.status_code) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET one resource and return its JSON."""
        return self._json(self._send("GET", path, params=dict(params or {})))

    def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> Record:
        """GET one resource that must be a JSON object."""
        body = self.get(path, params)
        if not isinstance(body, dict):
            raise PermanentError(f"expected a JSON object from {path}", source=self.source)
        return body

    def get_list(self, path: str, key: str, params: Mapping[str, Any] | None = None
                 ) -> list[Record]:
        """GET an unpaged listing: ``{key: [...]}`` or a bare array (lookups answer both)."""
        return self._items(self.get(path, params), key, path)

    def _items(self, body: Any, key: str, path: str) -> list[Record]:
        items = body.get(key) if isinstance(body, dict) else body
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise PermanentError(f"'{key}' of {path} is not a list of objects",
                                 source=self.source)
        return items

    def iter_pages(self, path: str, key: str, params: Mapping[str, Any] | None = None
                   ) -> Iterator[ApiPage]:
        """Yield the pages of a listing (``pageinate``, ``page_size``, ``page_no`` from 1).

        Raises:
            PermanentError: a page is not ``{record_count, <key>: [...]}``, holds more
                than ``page_size`` records, or repeats (Halo ignored the paging parameters).
        """
        size = self.config.page_size
        page_no = 1
        last: int | None = None
        seen: set[str] = set()
        while True:
            query = {**(params or {}), "pageinate": "true", "page_size": size,
                     "page_no": page_no}
            body = self.get(path, query)
            if not isinstance(body, dict):
                raise PermanentError(f"expected a page object from {path}", source=self.source)
            items = self._items(body, key, path)
            if len(items) > size:
                raise PermanentError(f"{path} ignored the paging parameters "
                                     f"({len(items)} records for page_size {size})",
                                     source=self.source)
            marker = repr([i.get("id") for i in items[:1]] + [i.get("id") for i in items[-1:]])
            if items and marker in seen:
                raise PermanentError(f"{path} repeated a page (page_no ignored)",
                                     source=self.source)
            seen.add(marker)
            count = body.get("record_count")
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                last = max(1, math.ceil(count / size))
            more = bool(items) and len(items) == size and (last is None or page_no < last)
            yield ApiPage(items, more)
            if not more:
                return
            page_no += 1

    def post(self, path: str, records: list[Record]) -> Record:
        """POST an array of records (Halo's create-or-update); returns the first record
        of the answer (Halo answers the object, or an array of them)."""
        body = self._json(self._send("POST", path, json=records))
        if isinstance(body, list) and body and isinstance(body[0], dict):
            return body[0]
        if isinstance(body, dict):
            return body
        raise PermanentError(f"{path} answered without the saved record", source=self.source)
