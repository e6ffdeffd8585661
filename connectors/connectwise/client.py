"""ConnectWise PSA REST client: auth, headers, paging and JSON (HTTP only, no events)."""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from connectors.base import PermanentError, RequestBudget
from connectors.connectwise.config import ConnectWiseConfig
from connectors.http import DEFAULT_RETRY, RetryPolicy, make_client, send

Record = dict[str, Any]


class ConnectWiseAuth(httpx.Auth):
    """Basic auth with user ``{companyId}+{publicKey}`` and the private key as password."""

    def __init__(self, company_id: str, public_key: str, private_key: str) -> None:
        token = f"{company_id}+{public_key}:{private_key}".encode()
        self._header = "Basic " + base64.b64encode(token).decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ConnectWiseClient:
    """Thin HTTP wrapper over ``/{codebase}apis/3.0``; every call goes through ``send``."""

    def __init__(
        self,
        config: ConnectWiseConfig,
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
        self._http = make_client(
            config.api_root,
            auth=ConnectWiseAuth(
                config.company_id, config.public_key, config.private_key.get_secret_value()
            ),
            headers={
                "clientId": config.client_id,
                "Accept": f"application/vnd.connectwise.com+json; version={config.api_version}",
            },
            timeout=config.timeout_seconds,
            transport=transport,
            source=source,
        )
        # Signing keys live outside the API root and are fetched without our credentials.
        self._plain = make_client(
            config.origin, timeout=config.timeout_seconds, transport=transport, source=source
        )

    def close(self) -> None:
        """Close both connection pools."""
        self._http.close()
        self._plain.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return send(
            self._http,
            method,
            url,
            source=self.source,
            budget=self._budget,
            policy=self._retry,
            **kwargs,
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PermanentError(
                f"invalid JSON from {response.request.url.path}",
                source=self.source,
                status=response.status_code,
            ) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET one resource (or a single page) and return its JSON."""
        return self._json(self._send("GET", path, params=dict(params or {})))

    def post(self, path: str, body: Any) -> Any:
        """POST a JSON body (not retried once it may have reached the server)."""
        return self._json(self._send("POST", path, json=body))

    def patch(self, path: str, operations: list[dict[str, Any]]) -> Any:
        """PATCH with a JSON-Patch array; replacing fields is idempotent, so retry freely."""
        return self._json(self._send("PATCH", path, json=operations, idempotent=True))

    def delete(self, path: str) -> None:
        """DELETE a resource."""
        self._send("DELETE", path)

    def upload(self, path: str, fields: Mapping[str, str], file: tuple[str, bytes, str]) -> Any:
        """POST multipart/form-data with form ``fields`` and one ``file`` part."""
        return self._json(self._send("POST", path, data=dict(fields), files={"file": file}))

    def get_list(self, path: str, params: Mapping[str, Any]) -> list[Record]:
        """GET one page that must be a JSON array."""
        return self._rows(self._send("GET", path, params=dict(params)))

    def _rows(self, response: httpx.Response) -> list[Record]:
        rows = self._json(response)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PermanentError(
                f"expected a JSON array of objects from {response.request.url.path}",
                source=self.source,
            )
        return rows

    def iter_pages(
        self, path: str, params: Mapping[str, Any], page_size: int
    ) -> Iterator[tuple[list[Record], bool]]:
        """Yield ``(rows, more)`` per page, following ``Link: rel="next"`` or page numbers.

        Without a Link header a full page means "maybe more": the next page number is
        requested and an empty or short page ends the walk.

        Raises:
            PermanentError: a page token repeats, or a next link leaves our API origin.
        """
        url = path
        query: dict[str, Any] = {**params, "page": 1, "pageSize": page_size}
        seen = {"1"}
        while True:
            response = self._send("GET", url, params=query)
            rows = self._rows(response)
            next_url = response.links.get("next", {}).get("url")
            if next_url:
                url, query = self._same_origin(next_url)
            elif "link" not in response.headers and len(rows) >= page_size:
                query = {**query, "page": int(query.get("page", 1)) + 1}
            else:
                yield rows, False
                return
            token = str(query.get("pageId") or query.get("page") or sorted(query.items()))
            if token in seen:
                raise PermanentError(f"page token {token} repeated", source=self.source)
            seen.add(token)
            yield rows, True

    def _same_origin(self, link: str) -> tuple[str, dict[str, Any]]:
        """Split a next link into (absolute path URL, params); refuse other origins."""
        parts = urlsplit(link)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if parts.netloc and origin != self.config.origin.lower():
            raise PermanentError("next-page link points at another host", source=self.source)
        return f"{self.config.origin}{parts.path}", dict(parse_qsl(parts.query))

    def fetch_signing_key(self, url: str) -> str:
        """GET a callback ``key_url`` (already allow-listed) and return ``signing_key``."""
        response = send(self._plain, "GET", url, source=self.source, policy=self._retry)
        body = self._json(response)
        key = body.get("signing_key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise PermanentError("callback key response has no signing_key", source=self.source)
        return key
