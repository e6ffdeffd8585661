"""NinjaOne instance configuration: instance URL, API client credentials, webhook header secret."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# NinjaOne's regional instances (vendor notes §2.1); white-label hosts need allow_any_host.
INSTANCE_HOST = re.compile(r"^(app|us2|eu|ca|oc|fed)\.ninjarmm\.com$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Scopes per call (the spec's ``security`` names monitoring, management, control):
READ_SCOPE = "monitoring"  # every GET the hub makes
WEBHOOK_SCOPE = "monitoring management"  # PUT/DELETE /v2/webhook only
ActivityClass = Literal["ALL", "DEVICE", "SYSTEM", "USER"]


class NinjaOneConfig(BaseModel):
    """One NinjaOne tenant as configured in ``config/connectors.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_url: str = Field(
        description="Your NinjaOne instance, e.g. https://eu.ninjarmm.com "
        "(http://127.0.0.1:<port> for the sandbox)"
    )
    client_id: str = Field(min_length=1, description="The API client app's client id")
    client_secret: SecretStr = Field(description="The API client app's client secret")
    webhook_secret: SecretStr | None = Field(
        None, description="Random, at least 16 characters; NinjaOne sends it in "
        "webhook_header on every delivery (registered with PUT /v2/webhook)"
    )
    webhook_header: str = Field(
        "X-Msphub-Webhook-Secret", description="Name of the custom header carrying "
        "webhook_secret (NinjaOne signs nothing)"
    )
    allow_any_host: bool = Field(
        False, description="Accept an instance outside *.ninjarmm.com (white label, sandbox)"
    )
    organizations: tuple[int, ...] | None = Field(
        None, description="Only these organization ids (device filter for polls and "
        "queries, organizationIds of the webhook); default: every organization"
    )
    activity_class: ActivityClass = Field(
        "ALL", description="'class' filter of /v2/activities (backup, patch, AV and "
        "conditions are DEVICE activities; NODE_CREATED may be SYSTEM)"
    )
    page_size: int = Field(200, ge=10, le=1000, description="pageSize of activity pages")
    max_pages: int = Field(
        50, ge=1, le=10_000, description="Pages read per poll; a longer backlog is "
        "resumed by the next poll from where this one stopped"
    )
    id_lookback: int = Field(
        50, ge=0, description="Re-read this many activity ids below the cursor each poll "
        "(an activity committed late with a lower id is not skipped)"
    )
    backfill: timedelta = Field(
        timedelta(hours=24), description="How far back the very first poll reads, on "
        "NinjaOne's clock (the first response's Date header)"
    )
    psa_company_field: str | None = Field(
        None, description="An organization custom field (``fields``) holding the PSA "
        "company id, offered as a linking hint"
    )
    psa_vendor: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_-]*$", description="The PSA vendor whose company ids "
        "psa_company_field holds (connectwise, autotask, halopsa): link suggestions compare "
        "the hint only with links to sources of that vendor"
    )
    requests_per_minute: int = Field(
        300, ge=1, description="Our own request budget (NinjaOne publishes none)"
    )
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("instance_url")
    @classmethod
    def _instance_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = "https://" + value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("instance_url must be https://<instance>.ninjarmm.com")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("instance_url must not carry a path, query or user")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("webhook_secret must be at least 16 characters")
        return value

    @field_validator("webhook_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not HEADER_NAME.fullmatch(value) or value.lower() in ("authorization", "host",
                                                                  "content-type"):
            raise ValueError("webhook_header must be a custom header name (letters, digits, -)")
        return value

    @field_validator("organizations")
    @classmethod
    def _organizations(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or any(i < 1 for i in value)):
            raise ValueError("organizations must list organization ids, or be omitted")
        return value

    @model_validator(mode="after")
    def _instance(self) -> NinjaOneConfig:
        """Refuse a host that is not a NinjaOne instance unless ``allow_any_host`` is set."""
        host = urlsplit(self.instance_url).hostname or ""
        if not self.allow_any_host and not INSTANCE_HOST.fullmatch(host):
            raise ValueError(
                f"instance_url host {host!r} is not a NinjaOne instance "
                "(app|us2|eu|ca|oc|fed.ninjarmm.com); set allow_any_host for a "
                "white-label host or the sandbox")
        if self.instance_url.startswith("http://") and not self.allow_any_host:
            raise ValueError("instance_url must use https")
        return self

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint (``/ws/oauth/token``)."""
        return f"{self.instance_url}/ws/oauth/token"
