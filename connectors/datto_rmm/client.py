"""Datto RMM REST client: the password grant, ``pageDetails`` paging and JSON (HTTP only).

Paging: the first request of a listing sends only ``max`` (no ``page``: Datto starts at
its first page), then each response's ``pageDetails.nextPageUrl`` is followed verbatim
until it is null or empty. A next URL is *absolute*; it must stay on the configured
origin under ``/api/`` (the bearer token never goes to another host) and must not repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import SecretStr

from connectors.base import PermanentError, RateLimited, RequestBudget
from connectors.datto_rmm.config import (
    PUBLIC_CLIENT_ID,
    PUBLIC_CLIENT_SECRET,
    UID,
    DattoRMMConfig,
)
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send
from connectors.oauth import OAuth2Auth, PasswordGrant, TokenStore

Record = dict[str, Any]
AlertState = Literal["open", "resolved"]
# Refresh when a quarter of the 100-hour token life is left (pncit does the same).
REFRESH_MARGIN = 25 * 3600.0
DEFAULT_TOKEN_LIFE = 100 * 3600.0


@dataclass(frozen=True)
class ApiPage:
    """One page of a listing: its records, whether a next page exists, Datto's clock."""

    items: list[Record]
    more: bool
    server_time: datetime | None


def check_uid(value: str, what: str) -> str:
    """A UID safe to put in a URL path (no ``/``, ``..``, ``?``); else PermanentError."""
    if not isinstance(value, str) or not UID.fullmatch(value):
        raise PermanentError(f"{what} is not a Datto UID")
    return value


def server_time(response: httpx.Response) -> datetime | None:
    """Datto's clock from the ``Date`` header, when present and readable."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class DattoRMMClient:
    """Thin HTTP wrapper over ``{api_url}/api``; every call goes through ``send``."""

    def __init__(
        self,
        config: DattoRMMConfig,
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
        grant = PasswordGrant(
            username=config.api_key,
            password=config.api_secret,
            client_id=PUBLIC_CLIENT_ID,
            client_secret=SecretStr(PUBLIC_CLIENT_SECRET),
            basic_auth=True,
        )
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

    def get_object(self, path: str) -> Record:
        """GET one resource that must be a JSON object."""
        body = self.get(path)
        if not isinstance(body, dict):
            raise PermanentError(f"expected a JSON object from {path}", source=self.source)
        return body

    def iter_pages(self, path: str, key: str, params: dict[str, Any] | None = None
                   ) -> Iterator[ApiPage]:
        """Yield each page's ``key`` records, following ``pageDetails.nextPageUrl``.

        Raises:
            PermanentError: a page is not ``{pageDetails, <key>: [...]}``, a next URL
                leaves our origin or ``/api/``, or a next URL repeats.
        """
        url, query = path, {**(params or {}), "max": self.config.page_size}
        seen: set[str] = set()
        while True:
            response = self._send("GET", url, params=query)
            body = self._json(response)
            if not isinstance(body, dict):
                raise PermanentError(f"expected a page object from {url}", source=self.source)
            items = body.get(key)
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise PermanentError(f"'{key}' of {url} is not a list of objects",
                                     source=self.source)
            details = body.get("pageDetails")
            next_url = details.get("nextPageUrl") if isinstance(details, dict) else None
            when = server_time(response)
            if not next_url:
                yield ApiPage(items, False, when)
                return
            if not isinstance(next_url, str) or next_url in seen:
                raise PermanentError("pageDetails.nextPageUrl repeated or is not a URL",
                                     source=self.source)
            seen.add(next_url)
            url, query = self._same_origin(next_url)
            yield ApiPage(items, True, when)

    def _same_origin(self, link: str) -> tuple[str, dict[str, Any]]:
        """Split an absolute next URL into (URL on our origin, params); refuse elsewhere."""
        parts = urlsplit(link)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin != self.config.api_url.lower() or not parts.path.startswith("/api/"):
            raise PermanentError("pageDetails.nextPageUrl points outside the API",
                                 source=self.source)
        return f"{self.config.api_url}{parts.path}", dict(parse_qsl(parts.query))

    # -- resources ------------------------------------------------------------------------

    def alerts(self, state: AlertState, *, site_uid: str | None = None) -> Iterator[ApiPage]:
        """Pages of open or resolved alerts, account-wide or of one site."""
        if site_uid is None:
            return self.iter_pages(f"/v2/account/alerts/{state}", "alerts")
        uid = check_uid(site_uid, "site uid")
        return self.iter_pages(f"/v2/site/{uid}/alerts/{state}", "alerts")

    def alert(self, alert_uid: str) -> Record:
        """One alert by UID (``NotFound`` when this account has no such alert)."""
        return self.get_object(f"/v2/alert/{check_uid(alert_uid, 'alert uid')}")

    def sites(self) -> Iterator[Record]:
        """Every site of the account."""
        for page in self.iter_pages("/v2/account/sites", "sites"):
            yield from page.items

    def devices(self, *, site_uid: str | None = None) -> Iterator[Record]:
        """Every device of the account, or of one site."""
        path = ("/v2/account/devices" if site_uid is None
                else f"/v2/site/{check_uid(site_uid, 'site uid')}/devices")
        for page in self.iter_pages(path, "devices"):
            yield from page.items

    def device(self, device_uid: str) -> Record:
        """One device by UID."""
        return self.get_object(f"/v2/device/{check_uid(device_uid, 'device uid')}")
