"""Datto RMM instance configuration: platform URL, API user key/secret, webhook secret."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# The public OAuth client every Datto RMM API integration uses with the password grant.
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_CLIENT_SECRET = "public"  # documented and the same for everyone: not a secret
PLATFORM_HOST = re.compile(r"^[a-z]+-api\.centrastage\.net$")
# Datto UIDs (alerts, sites, devices): UUID-like; nothing else may reach a URL path.
UID = re.compile(r"[A-Za-z0-9-]{1,64}")


class DattoRMMConfig(BaseModel):
    """One Datto RMM account as configured in ``config/connectors.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str = Field(
        description="The platform's API URL shown under Setup → Users → (API user), e.g. "
        "https://pinotage-api.centrastage.net (http://127.0.0.1:<port> for the sandbox)"
    )
    api_key: str = Field(min_length=1, description="The API user's API key (the username)")
    api_secret: SecretStr = Field(description="The API user's API secret (the password)")
    webhook_secret: SecretStr | None = Field(
        None, description="Random, at least 16 characters; the last segment of the webhook "
        "URL given to Datto (/webhooks/<source>/<secret>), compared in constant time"
    )
    allow_any_host: bool = Field(
        False, description="Accept an api_url outside *-api.centrastage.net (sandbox, proxy)"
    )
    sites: tuple[str, ...] | None = Field(
        None, description="Poll only these site UIDs (per-site alert endpoints); "
        "default: the whole account"
    )
    requests_per_minute: int = Field(
        600, ge=1, description="Datto's budget: 600 requests per 60 s for the whole account"
    )
    page_size: int = Field(100, ge=1, le=1000, description="'max' per page")
    poll_lookback: timedelta = Field(
        timedelta(minutes=10), description="Re-read this much before the cursor each poll"
    )
    backfill: timedelta = Field(
        timedelta(hours=24), description="How far back the very first poll reads, measured "
        "on Datto's clock (the first response's Date header)"
    )
    resolved_order: Literal["unknown", "newest_first"] = Field(
        "unknown", description="Sort order of the resolved-alerts list (undocumented). "
        "'newest_first' stops paging at the first page wholly older than the window"
    )
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = "https://" + value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be https://<platform>-api.centrastage.net")
        if parts.path not in ("", "/", "/api") or parts.query or parts.username:
            raise ValueError("api_url must not carry a path (other than /api), query or user")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("webhook_secret must be at least 16 characters")
        return value

    @field_validator("sites")
    @classmethod
    def _sites(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not UID.fullmatch(s) for s in value)):
            raise ValueError("sites must list site UIDs (letters, digits, '-'), or be omitted")
        return value

    @model_validator(mode="after")
    def _platform(self) -> DattoRMMConfig:
        """Refuse a host that is not a Datto platform unless ``allow_any_host`` is set."""
        host = urlsplit(self.api_url).hostname or ""
        if not self.allow_any_host and not PLATFORM_HOST.fullmatch(host):
            raise ValueError(
                f"api_url host {host!r} is not a Datto RMM platform "
                "(<platform>-api.centrastage.net); set allow_any_host for a sandbox or proxy")
        if self.api_url.startswith("http://") and not self.allow_any_host:
            raise ValueError("api_url must use https")
        return self

    @property
    def api_root(self) -> str:
        """``{api_url}/api``: the spec's server URL; resource paths are ``/v2/...``."""
        return f"{self.api_url}/api"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint (outside ``/api``)."""
        return f"{self.api_url}/auth/oauth/token"
