"""Callback authenticity: the ``x-content-signature`` scheme and the signing-key URL allow-list.

ConnectWise signs each callback body with a key published at ``Metadata.key_url``:
``base64(HMAC-SHA256(key=SHA256(signing_key), msg=raw body))``. The URL comes from the
(untrusted) body, so it is fetched only when it points at the configured site or at a
ConnectWise cloud host over HTTPS; anything else is refused before any request (SSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from connectors.connectwise.config import is_vendor_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def sign(body: bytes, signing_key: str) -> str:
    """The ``x-content-signature`` value ConnectWise sends for ``body``."""
    key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def signature_ok(body: bytes, header: str | None, signing_key: str) -> bool:
    """Constant-time check of a signature header against the raw body.

    The header is compared as ASCII bytes; a non-ASCII header cannot match (comparing
    non-ASCII ``str`` raises ``TypeError``).
    """
    given = (header or "").strip()
    if not given.isascii():
        return False
    return hmac.compare_digest(sign(body, signing_key).encode("ascii"), given.encode("ascii"))


def key_url_allowed(url: str, site_origin: str) -> bool:
    """True when ``url`` may be fetched for a signing key.

    Allowed: the configured site's own origin (any scheme, so the local sandbox and
    on-premise installs work), or HTTPS on the default port of a ConnectWise cloud host.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if parts.username or parts.password or not parts.hostname:
        return False
    site = urlsplit(site_origin)
    site_port = site.port or _DEFAULT_PORTS.get(site.scheme)
    host = parts.hostname.lower()
    if (parts.scheme, host, port) == (site.scheme, (site.hostname or "").lower(), site_port):
        return True
    return parts.scheme == "https" and port == 443 and is_vendor_host(host)


class SigningKeys:
    """Signing keys cached per key URL (bounded, thread-safe)."""

    def __init__(self, fetch: Callable[[str], str], *, max_size: int = 64) -> None:
        self._fetch = fetch
        self._max = max_size
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> str:
        """The key at ``url``, fetched once and then served from the cache."""
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        key = self._fetch(url)
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > self._max:
                self._keys.popitem(last=False)
        return key

    def forget(self, url: str) -> None:
        """Drop a cached key (after a mismatch, in case the key was rotated)."""
        with self._lock:
            self._keys.pop(url, None)
