"""Check recorded Datto RMM requests against Datto's own OpenAPI 3.1 document.

The spec lives in ``shared/vendor-specs/datto-rmm/openapi.json`` beside the repository
(never copied in). Its server URL ends in ``/api`` and its paths are ``/v2/...``. The
token endpoint is outside the API and outside the spec: :data:`NOT_IN_SPEC` lists what we
send there and where that comes from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from .conftest import SHARED

SPEC_FILE = SHARED / "openapi.json"
PUBLIC_BASIC = "Basic cHVibGljLWNsaWVudDpwdWJsaWM="


@dataclass(frozen=True)
class Allowed:
    """An endpoint the spec does not describe: the form fields we may send, and why."""

    form: frozenset[str]
    why: str


NOT_IN_SPEC: dict[tuple[str, str], Allowed] = {
    ("POST", "/auth/oauth/token"): Allowed(
        frozenset({"grant_type", "username", "password"}),
        "password grant with Basic public-client:public (vendor notes §1.1: Datto help "
        "APIv2, pncit auth-manager.ts, Nango datto-rmm-password-grant)",
    ),
}


def load_spec() -> dict[str, Any]:
    """The OpenAPI document; skips only when ``shared/`` is absent."""
    if not SPEC_FILE.is_file():
        pytest.skip("shared/ (vendor specs) is not beside the repository")
    return dict(json.loads(SPEC_FILE.read_text()))


class SpecChecker:
    """Validates one request at a time; ``problems`` collects every mismatch."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = urlsplit(spec["servers"][0]["url"]).path  # "/api"
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p) for p in spec["paths"]
        ]
        self.problems: list[str] = []
        self.checked: set[tuple[str, str]] = set()

    def template(self, path: str) -> str | None:
        """The spec path for a concrete path (fewest parameters wins: exact paths first)."""
        if path in self.spec["paths"]:
            return path
        matches = [t for rx, t in self.templates if rx.match(path)]
        return min(matches, key=lambda t: t.count("{")) if matches else None

    def check(self, request: httpx.Request) -> None:
        """Record every way ``request`` departs from the spec (or the allow-list)."""
        method, path = request.method, request.url.path
        where = f"{method} {path}"
        query = {k for k, _ in parse_qsl(urlsplit(str(request.url)).query)}
        allowed = NOT_IN_SPEC.get((method, path))
        if allowed is not None:
            self.checked.add((method, path))
            if request.headers.get("authorization") != PUBLIC_BASIC:
                self.problems.append(f"{where}: not Basic public-client:public")
            form = {k for k, _ in parse_qsl(request.content.decode())}
            if form != allowed.form or query:
                self.problems.append(f"{where}: sends {sorted(form | query)}")
            return
        if not path.startswith(self.base + "/"):
            self.problems.append(f"{where}: outside the server URL {self.base}")
            return
        if not request.headers.get("authorization", "").startswith("Bearer "):
            self.problems.append(f"{where}: no bearer token")
        template = self.template(path[len(self.base):])
        operation = self.spec["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None or template is None:
            self.problems.append(f"{where}: not in the spec")
            return
        self.checked.add((method, template))
        params = operation.get("parameters", [])
        declared = {p["name"] for p in params if p.get("in") == "query"}
        extra = sorted(query - declared)
        if extra:
            self.problems.append(f"{where}: query parameters not declared: {extra}")
        for name, value in parse_qsl(urlsplit(str(request.url)).query):
            schema = next((p.get("schema", {}) for p in params if p["name"] == name), {})
            if schema.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
                self.problems.append(f"{where}: {name}={value!r} is not an integer")
        if request.content and "requestBody" not in operation:
            self.problems.append(f"{where}: sends a body the spec does not take")
