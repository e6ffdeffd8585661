"""Check recorded NinjaOne requests against NinjaOne's own OpenAPI document.

The spec lives in ``shared/vendor-specs/ninjaone/ninjaone-openapi-original.yml`` beside
the repository (never copied in). It has no ``servers`` block; its paths are ``/v2/...``
on the instance host. The token endpoint is outside the spec: :data:`NOT_IN_SPEC` lists
what we send there and where that comes from.
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
import yaml

from .conftest import SHARED

SPEC_FILE = SHARED / "ninjaone-openapi-original.yml"
SCOPES = frozenset({"monitoring", "management", "control"})


@dataclass(frozen=True)
class Allowed:
    """An endpoint the spec does not describe: the form fields we may send, and why."""

    form: frozenset[str]
    why: str


NOT_IN_SPEC: dict[tuple[str, str], Allowed] = {
    ("POST", "/ws/oauth/token"): Allowed(
        frozenset({"grant_type", "client_id", "client_secret", "scope"}),
        "client_credentials with client_secret_post (vendor notes §2.1: NinjaOne's "
        "authorization-server metadata, homotechsual Connect-NinjaOne.ps1, Nango)",
    ),
}


@cache
def _parsed() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_FILE.open() as handle:
        return dict(yaml.load(handle, Loader=loader))  # CSafeLoader or SafeLoader


def load_spec() -> dict[str, Any]:
    """The OpenAPI document; skips only when ``shared/`` is absent."""
    if not SPEC_FILE.is_file():
        pytest.skip("shared/ (vendor specs) is not beside the repository")
    return _parsed()


class SpecChecker:
    """Validates one request at a time; ``problems`` collects every mismatch."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
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
        query = parse_qsl(urlsplit(str(request.url)).query)
        allowed = NOT_IN_SPEC.get((method, path))
        if allowed is not None:
            self.checked.add((method, path))
            form = dict(parse_qsl(request.content.decode()))
            if set(form) != allowed.form or query:
                self.problems.append(f"{where}: sends {sorted(set(form) | dict(query).keys())}")
            if not set(form.get("scope", "").split()) <= SCOPES:
                self.problems.append(f"{where}: unknown scope {form.get('scope')!r}")
            return
        if not request.headers.get("authorization", "").startswith("Bearer "):
            self.problems.append(f"{where}: no bearer token")
        template = self.template(path)
        operation = self.spec["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None or template is None:
            self.problems.append(f"{where}: not in the spec")
            return
        self.checked.add((method, template))
        params = operation.get("parameters", [])
        declared = {p["name"] for p in params if p.get("in") == "query"}
        extra = sorted({k for k, _ in query} - declared)
        if extra:
            self.problems.append(f"{where}: query parameters not declared: {extra}")
        for name, value in query:
            schema = next((p.get("schema", {}) for p in params if p["name"] == name), {})
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    self.problems.append(f"{where}: {name}={value!r} is not an integer")
                elif not schema.get("minimum", -1e30) <= int(value) <= schema.get(
                        "maximum", 1e30):
                    self.problems.append(f"{where}: {name}={value} is out of range")
            if schema.get("enum") and value not in schema["enum"]:
                self.problems.append(f"{where}: {name}={value!r} is not one of the enum")
        if request.content and "requestBody" not in operation:
            self.problems.append(f"{where}: sends a body the spec does not take")
        if request.content and "requestBody" in operation:
            self._check_body(where, operation, request)

    def _check_body(self, where: str, operation: dict[str, Any], request: httpx.Request) -> None:
        """Top-level properties of a JSON body must exist in the referenced schema."""
        content = operation["requestBody"].get("content", {}).get("application/json", {})
        ref = content.get("schema", {}).get("$ref", "")
        schema = self.spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
        body = json.loads(request.content)
        unknown = sorted(set(body) - set(schema.get("properties", {})))
        if unknown:
            self.problems.append(f"{where}: body properties not in the schema: {unknown}")
