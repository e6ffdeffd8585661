"""ConnectWise PSA instance configuration and the cloud host map."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# What a user types → the API host (cloud sites answer the API on api-* hosts).
CLOUD_API_HOSTS = {
    "na.myconnectwise.net": "api-na.myconnectwise.net",
    "eu.myconnectwise.net": "api-eu.myconnectwise.net",
    "au.myconnectwise.net": "api-au.myconnectwise.net",
    "aus.myconnectwise.net": "api-aus.myconnectwise.net",
    "za.myconnectwise.net": "api-za.myconnectwise.net",
    "staging.connectwisedev.com": "api-staging.connectwisedev.com",
}

# Hosts that may serve callback signing keys (besides the configured site itself).
VENDOR_KEY_HOSTS = frozenset(
    f"{prefix}{region}.myconnectwise.net"
    for prefix in ("", "api-")
    for region in ("na", "eu", "au", "aus", "za")
)


def is_vendor_host(host: str) -> bool:
    """True for ConnectWise cloud hosts allowed to serve callback signing keys."""
    host = host.lower().rstrip(".")
    return host in VENDOR_KEY_HOSTS or (
        host.endswith(".connectwisedev.com") and host != ".connectwisedev.com"
    )


class ConnectWiseConfig(BaseModel):
    """One ConnectWise PSA tenant as configured in ``config/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field(
        description="Host (na.myconnectwise.net, api-eu.myconnectwise.net, cw.example.com) "
        "or scheme://host[:port] for on-premise and the sandbox"
    )
    codebase: str = Field("v4_6_release/", pattern=r"^[A-Za-z0-9_.]+/$")
    company_id: str = Field(min_length=1)
    public_key: str = Field(min_length=1)
    private_key: SecretStr
    client_id: str = Field(min_length=1, description="clientId from developer.connectwise.com")
    api_version: str = Field("2022.1", pattern=r"^\d{4}\.\d+$")
    webhook_secret: SecretStr | None = Field(
        None, description="Per-instance secret carried in our callback URL (path or ?token=)"
    )
    api_member: str | None = Field(
        None, description="Identifier of the API member; its own changes are not new work"
    )
    boards: tuple[str, ...] | None = Field(None, description="Only tickets on these boards")
    completed_status: str | None = Field(None, description="Status to set when a run completes")
    note_flag: Literal["internal", "discussion", "resolution"] = "internal"
    requests_per_minute: int = Field(600, ge=1)
    poll_lookback: timedelta = timedelta(minutes=2)
    backfill: timedelta = Field(
        timedelta(0), description="How far back the very first poll reads (beyond the lookback)"
    )
    page_size: int = Field(1000, ge=1, le=1000)
    timeout_seconds: float = Field(30.0, gt=0)
    callback_types: tuple[Literal["ticket", "agreement", "company"], ...] = (
        "ticket",
        "agreement",
    )
    self_suppress_callbacks: bool = True
    require_signature: bool = True

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" not in value:
            host = value.lower()
            if not host or "/" in host or "@" in host:
                raise ValueError("site must be a host name or scheme://host[:port]")
            return "https://" + CLOUD_API_HOSTS.get(host, host)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("site URL must be http(s)://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("site URL must not carry a path, query or user (set 'codebase')")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("boards")
    @classmethod
    def _boards(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("boards must name at least one board, or be omitted")
            if any('"' in b or not b.strip() for b in value):
                raise ValueError("board names must be non-empty and contain no double quotes")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("webhook_secret must be at least 16 characters")
        return value

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the API (the validated ``site``)."""
        return self.site

    @property
    def api_root(self) -> str:
        """Base of the REST API, e.g. ``https://api-na.myconnectwise.net/v4_6_release/apis/3.0``."""
        return f"{self.site}/{self.codebase}apis/3.0"
