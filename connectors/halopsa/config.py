"""HaloPSA instance configuration: API host, auth server and tenant, webhook auth, write-back."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# Halo's documented cap for ``page_size`` on paged listings ("Maximum size: 100").
MAX_PAGE_SIZE = 100


def _origin(value: str, what: str) -> str:
    """``scheme://host[:port]`` from a host name or URL (no path, query or user)."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be a host name or http(s)://host[:port]")
    if parts.query or parts.username or parts.fragment:
        raise ValueError(f"{what} must not carry a query or a user")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


class HaloPSAConfig(BaseModel):
    """One HaloPSA (HaloITSM, HaloServiceDesk) instance as configured in ``config/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="The Halo web address (acme.halopsa.com, https://halo.example.com); "
        "the API is {url}/api"
    )
    auth_url: str | None = Field(
        None, description="The authorisation server, as /api/authinfo shows it "
        "(default {url}/auth); the token endpoint is {auth_url}/token"
    )
    tenant: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Hosted instances: the tenant name, sent as ?tenant= to the token endpoint",
    )
    client_id: str = Field(min_length=1, description="Client ID of the API application")
    client_secret: SecretStr = Field(description="Its secret (Client ID and Secret (Services))")
    scope: str = Field("all", min_length=1,
                       description="Space-separated scopes, e.g. 'read:tickets edit:tickets "
                       "read:contracts read:customers'")
    webhook_auth: Literal["basic", "header"] = Field(
        "basic", description="How Halo's webhook authenticates to us: 'basic' (Basic auth "
        "with webhook_username and webhook_secret) or 'header' (webhook_header carries "
        "webhook_secret)"
    )
    webhook_username: str = Field("msphub", min_length=1, pattern=r"^[^:]+$")
    webhook_header: str = Field("X-Msphub-Secret", pattern=r"^[A-Za-z0-9-]{1,64}$")
    webhook_secret: SecretStr | None = Field(
        None, description="Random, at least 16 characters: the Basic password or header value "
        "set on the Halo webhook, compared in constant time"
    )
    api_agent_id: int | None = Field(
        None, ge=1, description="The agent the API application logs in as: its actions "
        "are our own write-back, never new work (default: learned from our first action)"
    )
    teams: tuple[str, ...] | None = Field(None, description="Only tickets of these teams")
    note_outcome: str = Field("Private Note", min_length=1, max_length=100,
                              description="The action type (outcome) of our notes")
    note_outcome_id: int | None = Field(None, ge=1, description="Its id, when names differ")
    note_visibility: Literal["private", "visible"] = Field(
        "private", description="'private' hides our notes from the end user "
        "(hiddenfromuser), 'visible' shows them on the portal"
    )
    status_outcome: str | None = Field(
        None, description="Action type of the status-change action (default: note_outcome)"
    )
    completed_status: str | None = Field(None, description="Status to set when a run completes")
    closed_statuses: tuple[str, ...] = Field(
        ("Closed",), description="Status names that mean the ticket is closed (ticket.closed)"
    )
    contract_cancelled_statuses: tuple[str, ...] = Field(
        ("Cancelled", "Canceled", "Terminated"),
        description="contract_status values that mean the contract was cancelled",
    )
    requests_per_minute: int = Field(
        120, ge=1, description="Request budget; hosted Halo limits each tenant (about 700 "
        "per 5 minutes, unverified) and answers 429 beyond it"
    )
    page_size: int = Field(MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    poll_lookback: timedelta = timedelta(minutes=2)
    backfill: timedelta = Field(
        timedelta(0), description="How far back the very first poll reads (beyond the lookback)"
    )
    created_window: timedelta = Field(
        timedelta(hours=1), description="A ticket read back for a webhook is reported as "
        "created when Halo logged it at most this long before its latest change"
    )
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        origin = _origin(value, "url")
        if urlsplit(origin).path:
            raise ValueError("url must not carry a path (the API is {url}/api)")
        return origin

    @field_validator("auth_url")
    @classmethod
    def _auth_url(cls, value: str | None) -> str | None:
        return None if value is None else _origin(value, "auth_url")

    @field_validator("teams", "closed_statuses", "contract_cancelled_statuses")
    @classmethod
    def _names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not v.strip() for v in value)):
            raise ValueError("must list at least one non-empty name, or be omitted")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("webhook_secret must be at least 16 characters")
        return value

    @property
    def api_root(self) -> str:
        """``{url}/api``: the spec's server URL; resource paths are ``/Tickets`` etc."""
        return f"{self.url}/api"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint, with ``?tenant=`` for hosted multi-tenant instances."""
        base = f"{self.auth_url or self.url + '/auth'}/token"
        return f"{base}?tenant={self.tenant}" if self.tenant else base
