"""Check recorded ConnectWise requests against the legacy (2015) Service API swagger.

The spec lives in ``shared/vendor-specs/connectwise`` beside the repository (never
copied in). Endpoints the 2015 file does not describe are listed in ``NOT_IN_2015_SPEC``
with the fields we send and where those come from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SPEC_FILE = SHARED / "vendor-specs" / "connectwise" / "service-api-legacy-2015.swagger.json"
PAGING = frozenset({"conditions", "orderBy", "page", "pageSize"})


@dataclass(frozen=True)
class Allowed:
    """An endpoint missing from the 2015 spec: what we may send, and why we trust it."""

    query: frozenset[str]
    body: frozenset[str]
    why: str


NOT_IN_2015_SPEC: dict[tuple[str, str], Allowed] = {
    # The 2015 file is the *Service* API only; Finance, Company and System APIs are absent.
    ("GET", "/finance/agreements"): Allowed(
        PAGING, frozenset(), "Finance API agreements list (djcw FinanceAPIClient, pycw Agreement)"
    ),
    ("GET", "/finance/agreements/{id}"): Allowed(
        frozenset(), frozenset(), "Finance API agreement by id (enrich of thin callbacks)"
    ),
    ("GET", "/company/companies/{id}"): Allowed(
        frozenset(), frozenset(), "Company API company by id (enrich of thin callbacks)"
    ),
    ("GET", "/system/callbacks"): Allowed(
        PAGING, frozenset(), "System API callback list (djcw SystemAPIClient.get_callbacks)"
    ),
    ("POST", "/system/callbacks"): Allowed(
        frozenset(),
        frozenset(
            {
                "url",
                "objectId",
                "type",
                "level",
                "description",
                "inactiveFlag",
                "isSelfSuppressedFlag",
            }
        ),
        "CallbackEntry fields (pycw models CallbackEntry; djcw create_callback)",
    ),
    ("DELETE", "/system/callbacks/{id}"): Allowed(
        frozenset(), frozenset(), "djcw SystemAPIClient.delete_callback"
    ),
    ("GET", "/system/documents"): Allowed(
        PAGING | {"recordType", "recordId"}, frozenset(), "djcw get_attachments listing"
    ),
    ("POST", "/system/documents"): Allowed(
        frozenset(),
        frozenset({"recordType", "recordId", "title", "privateFlag", "readOnlyFlag", "file"}),
        "multipart upload (cwps New-CWMDocument.ps1, djcw upload_attachments)",
    ),
}

# Outside /apis/3.0 altogether: the callback signing key named by the callback body.
KEY_PATH = re.compile(r"^/[A-Za-z0-9_.]+/system/callbackkey/index\.rails$")


def load_spec() -> dict[str, Any]:
    """The swagger document; skips only when ``shared/`` is absent."""
    if not SHARED.is_dir():
        pytest.skip("shared/ (vendor specs) is not beside the repository")
    return dict(json.loads(SPEC_FILE.read_text()))


class SpecChecker:
    """Validates one request at a time; ``problems`` collects every mismatch."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec["basePath"]
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", p) + "$"), p) for p in spec["paths"]
        ]
        self.problems: list[str] = []
        self.checked: set[tuple[str, str]] = set()

    def _ref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            section, name = node["$ref"].split("/")[-2:]
            node = self.spec[section][name]
        return node

    def template(self, path: str) -> str | None:
        """The spec path template for a concrete path (exact paths win over templates)."""
        if path in self.spec["paths"]:
            return path
        matches = [t for rx, t in self.templates if rx.match(path)]
        return min(matches, key=lambda t: t.count("{")) if matches else None

    def check(self, request: httpx.Request) -> None:
        """Record every way ``request`` departs from the spec (or the allow-list)."""
        method, path = request.method, request.url.path
        where = f"{method} {path}"
        if KEY_PATH.match(path):
            self.checked.add((method, "callbackkey"))
            return
        if not path.startswith(self.base + "/"):
            self.problems.append(f"{where}: outside basePath {self.base}")
            return
        if not request.headers.get("authorization", "").startswith("Basic "):
            self.problems.append(f"{where}: no Basic auth (spec security BasicAuth)")
        rel = path[len(self.base) :]
        query = {k for k, _ in parse_qsl(urlsplit(str(request.url)).query)}
        template = self.template(rel)
        operation = self.spec["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None:
            generic = re.sub(r"/\d+(?=/|$)", "/{id}", rel)
            allowed = NOT_IN_2015_SPEC.get((method, generic))
            if allowed is None:
                self.problems.append(f"{where}: not in the spec nor in the allow-list")
                return
            self.checked.add((method, generic))
            self._names(where, "query", query, allowed.query)
            self._names(where, "body", self._body_fields(request), allowed.body)
            return
        assert template is not None
        self.checked.add((method, template))
        params = [self._ref(p) for p in operation.get("parameters", [])]
        declared = {p["name"] for p in params if p.get("in") == "query"}
        self._names(where, "query", query, declared)
        body_param = next((p for p in params if p.get("in") == "body"), None)
        if request.content:
            if body_param is None:
                self.problems.append(f"{where}: sends a body the spec does not take")
                return
            self._check_body(where, template, request, self._ref(body_param["schema"]))

    def _names(
        self, where: str, kind: str, sent: set[str], declared: set[str] | frozenset[str]
    ) -> None:
        extra = sorted(sent - set(declared))
        if extra:
            self.problems.append(f"{where}: {kind} fields not declared: {extra}")

    @staticmethod
    def _body_fields(request: httpx.Request) -> set[str]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            return {n.decode() for n in re.findall(rb'\bname="([^"]+)"', request.content)}
        if not request.content:
            return set()
        body = json.loads(request.content)
        return set(body) if isinstance(body, dict) else set()

    def _check_body(
        self, where: str, template: str, request: httpx.Request, schema: dict[str, Any]
    ) -> None:
        body = json.loads(request.content)
        props = schema.get("properties", {})
        if isinstance(body, list):
            # The 2015 spec declares one PatchOperation; the API takes a JSON-Patch array
            # of them. Each op must be a PatchOperation on a field of the GET schema.
            resource = self._ref(
                self.spec["paths"][template]["get"]["responses"]["200"]["schema"]
            ).get("properties", {})
            for op in body:
                self._names(where, "patch op", set(op), set(props))
                if op.get("path", "").strip("/") not in resource:
                    self.problems.append(f"{where}: patches unknown field {op.get('path')!r}")
            return
        self._names(where, "body", set(body), set(props))
        read_only = sorted(k for k in body if props.get(k, {}).get("readOnly"))
        if read_only:
            self.problems.append(f"{where}: writes read-only fields {read_only}")
