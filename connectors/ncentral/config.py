"""N-able N-central instance configuration: server URL, User-API token (JWT), poll scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# The hub's category vocabulary (shared with Datto RMM, NinjaOne and the shipped mappings).
CATEGORY_NAMES = frozenset({
    "backup", "patch", "av", "security", "online", "disk", "service", "eventlog", "process",
    "performance", "script", "software", "ping", "snmp", "wmi", "filesystem", "network",
    "hardware", "other",
})


class NcentralConfig(BaseModel):
    """One N-central server as configured in ``config/connectors.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str = Field(
        description="The N-central server, e.g. https://ncentral.example.com (the REST API "
        "is under /api); http://127.0.0.1:<port> for the sandbox with allow_http"
    )
    user_api_token: SecretStr = Field(
        description="The N-central User-API Token (JWT) generated for the API user "
        "(Administration → User Management → the user → API Access); exchanged for access "
        "and refresh tokens, never sent to any other endpoint"
    )
    allow_http: bool = Field(False, description="Accept an http:// server_url (sandbox only)")
    scope: Literal["customers", "sites", "customers_and_sites"] = Field(
        "customers_and_sites",
        description="Which org units' active issues to poll. Whether a customer's list "
        "includes its sites' devices is undocumented, so the default asks both and counts "
        "an issue (taskId) once",
    )
    org_units: tuple[int, ...] | None = Field(
        None, description="Poll only these customer/site org unit ids (default: every "
        "customer and/or site the API user can see, per scope)"
    )
    page_size: int = Field(100, ge=1, le=1000, description="pageSize (N-central: 1..1000)")
    max_pages: int = Field(
        200, ge=1, description="Bound on pages per listing; a longer listing counts as "
        "truncated (nothing of it is resolved)"
    )
    requests_per_minute: int = Field(
        300, ge=1, description="Our own request budget (N-central limits concurrency, "
        "answering 429 when too many requests are in flight)"
    )
    backfill: timedelta = Field(
        timedelta(hours=24), description="On the very first poll, raise only issues that "
        "became active this long before N-central's clock; older ones are remembered "
        "silently (their clearing is still reported)"
    )
    categories: dict[str, str] = Field(
        default_factory=dict, description="serviceName → alert.category overrides for this "
        "server's monitors (case-insensitive), e.g. {'Cove Backup Status': backup}"
    )
    priorities: dict[int, Literal["Critical", "High", "Moderate", "Low", "Information"]] = \
        Field(default_factory=dict, description="notificationState → alert.priority for "
              "this server (N-central does not document its codes), e.g. {5: Critical}; "
              "unmapped states leave alert.priority empty")
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = "https://" + value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("server_url must be https://<your N-central server>")
        if parts.path not in ("", "/", "/api") or parts.query or parts.username:
            raise ValueError("server_url must not carry a path (other than /api), query or user")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(v for v in value.values() if v not in CATEGORY_NAMES)
        if bad:
            raise ValueError(f"unknown categories {bad}; use one of {sorted(CATEGORY_NAMES)}")
        return {k.strip().lower(): v for k, v in value.items()}

    @field_validator("org_units")
    @classmethod
    def _org_units(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or any(v <= 0 for v in value)):
            raise ValueError("org_units must list positive customer/site ids, or be omitted")
        return value

    @model_validator(mode="after")
    def _https(self) -> NcentralConfig:
        """Refuse plain HTTP unless ``allow_http`` is set: the JWT is a permanent secret."""
        if self.server_url.startswith("http://") and not self.allow_http:
            raise ValueError("server_url must use https (set allow_http for a sandbox)")
        return self

    @property
    def api_root(self) -> str:
        """``{server_url}/api``: every REST path, the auth endpoints included."""
        return f"{self.server_url}/api"
