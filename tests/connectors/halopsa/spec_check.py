"""Check recorded HaloPSA requests against Halo's OpenAPI document (API v2).

The spec lives in ``shared/vendor-specs/halopsa/halo-api-v2.swagger.json`` beside the
repository (never copied in). Its server URL is ``/api`` and its paths ``/Tickets`` …
The token endpoint is outside the API and outside the spec: :data:`NOT_IN_SPEC` lists
what we send there and where that comes from. :data:`MISTYPED` lists parameters the spec
types wrongly (vendor notes §3.2).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from .conftest import SHARED

SPEC_FILE = SHARED / "halo-api-v2.swagger.json"
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@dataclass(frozen=True)
class Allowed:
    """An endpoint the spec does not describe: the form fields and query we may send."""

    form: frozenset[str]
    query: frozenset[str]
    why: str


NOT_IN_SPEC: dict[tuple[str, str], Allowed] = {
    ("POST", "/auth/token"): Allowed(
        frozenset({"grant_type", "client_id", "client_secret", "scope"}), frozenset({"tenant"}),
        "client-credentials grant, ?tenant= for hosted instances (vendor notes §3.1: halops "
        "Connect-HaloAPI.ps1, halonet AuthenticationHandler.cs, nango halo-psa)",
    ),
}
# Parameters the spec types as bool although Halo takes ISO datetimes (halonet's tests).
MISTYPED: dict[str, re.Pattern[str]] = {
    "lastupdatefromdate": ISO_DATETIME,
    "lastupdatetodate": ISO_DATETIME,
}


@cache
def _spec_text() -> str:
    return SPEC_FILE.read_text()


def load_spec() -> dict[str, Any]:
    """The OpenAPI document; skips only when ``shared/`` is absent."""
    if not SPEC_FILE.is_file():
        pytest.skip("shared/ (vendor specs) is not beside the repository")
    return dict(json.loads(_spec_text()))


class SpecChecker:
    """Validates one request at a time; ``problems`` collects every mismatch."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec["servers"][0]["url"]  # "/api"
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p) for p in spec["paths"]
        ]
        self.problems: list[str] = []
        self.checked: set[tuple[str, str]] = set()

    def template(self, path: str) -> str | None:
        """The spec path for a concrete path (exact paths first, then fewest parameters)."""
        if path in self.spec["paths"]:
            return path
        matches = [t for rx, t in self.templates if rx.match(path)]
        return min(matches, key=lambda t: t.count("{")) if matches else None

    def check(self, request: httpx.Request) -> None:
        """Record every way ``request`` departs from the spec (or the allow-list)."""
        method, path = request.method, request.url.path
        where = f"{method} {path}"
        pairs = parse_qsl(urlsplit(str(request.url)).query, keep_blank_values=True)
        query = {k for k, _ in pairs}
        allowed = NOT_IN_SPEC.get((method, path))
        if allowed is not None:
            self.checked.add((method, path))
            form = {k for k, _ in parse_qsl(request.content.decode())}
            if form != allowed.form or not query <= allowed.query:
                self.problems.append(f"{where}: sends {sorted(form)} ?{sorted(query)}")
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
        self._check_query(where, operation, pairs)
        self._check_body(where, operation, request)

    def _check_query(self, where: str, operation: dict[str, Any],
                     pairs: list[tuple[str, str]]) -> None:
        params = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
        declared = {p["name"]: p.get("schema", {}) for p in params}
        extra = sorted({k for k, _ in pairs} - set(declared))
        if extra:
            self.problems.append(f"{where}: query parameters not declared: {extra}")
        for name, value in pairs:
            kind = declared.get(name, {}).get("type")
            if name in MISTYPED:
                ok = bool(MISTYPED[name].fullmatch(value))
            elif kind == "int":
                ok = bool(re.fullmatch(r"-?\d+", value))
            elif kind == "bool":
                ok = value in ("true", "false")
            else:
                ok = True
            if not ok:
                self.problems.append(f"{where}: {name}={value!r} is not a {kind}")

    def _check_body(self, where: str, operation: dict[str, Any], request: httpx.Request) -> None:
        if not request.content:
            return
        body_spec = operation.get("requestBody")
        if body_spec is None:
            self.problems.append(f"{where}: sends a body the spec does not take")
            return
        schema = body_spec["content"].get("application/json", {}).get("schema", {})
        try:
            body = json.loads(request.content)
        except ValueError:
            self.problems.append(f"{where}: body is not JSON")
            return
        if schema.get("type") != "array" or not isinstance(body, list):
            self.problems.append(f"{where}: body must be an array (spec: {schema.get('type')})")
            return
        ref = schema.get("items", {}).get("$ref", "")
        props = self.spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
        for item in body:
            unknown = sorted(set(item) - set(props)) if isinstance(item, dict) else ["<not object>"]
            if unknown:
                self.problems.append(f"{where}: fields not in {ref}: {unknown}")
