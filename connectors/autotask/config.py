"""Autotask PSA instance configuration: API user, zone lookup, write-back and budget settings."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# Where every tenant's zone is looked up (no credentials needed).
ZONE_LOOKUP_URL = "https://webservices.autotask.net"
# Zone API hosts (webservices3.autotask.net, webservices14.autotask.net …).
ZONE_HOST = re.compile(r"^webservices\d*\.autotask\.net$")

# Fields our ticket webhook subscribes to (a change fires it) and shows always (routing).
DEFAULT_SUBSCRIBED = ("status", "issueType", "subIssueType", "queueID", "title")
DEFAULT_DISPLAY_ALWAYS = ("ticketNumber", "companyID")


def _origin(value: str, what: str) -> str:
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be https://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"{what} must not carry a path, query or user")
    return f"{parts.scheme}://{parts.netloc.lower()}"


class AutotaskConfig(BaseModel):
    """One Autotask PSA tenant (database) as configured in ``config/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=3, max_length=200,
                          description="The API-only user's user name (apiuser@acme.com)")
    secret: SecretStr = Field(description="The API user's secret")
    integration_code: SecretStr = Field(
        description="The API user's tracking identifier (ApiIntegrationCode header)")
    zone_lookup_url: str = Field(
        ZONE_LOOKUP_URL, description="Origin of the zoneInformation lookup (the sandbox's "
        "http://127.0.0.1:<port> in tests)")
    allow_any_host: bool = Field(
        False, description="Accept a zone URL outside webservices*.autotask.net (sandbox)")
    webhook_secret: SecretStr | None = Field(
        None, description="The webhook's secretKey (16-64 characters): Autotask signs each "
        "delivery with it (X-Hook-Signature)")
    api_resource_id: int | None = Field(
        None, ge=1, description="The API user's resource id (excluded from our webhook, its "
        "changes are our own write-back); default: looked up by user name")
    queues: tuple[str, ...] | None = Field(
        None, description="Only tickets in these queues (names); default: every queue")
    completed_status: str | None = Field(
        None, description="Ticket status (name) set when a run it launched completes")
    note_type: int | str = Field(
        1, description="Ticket note type: a picklist value or its label (e.g. 'Task Detail')")
    note_publish: int | str = Field(
        2, description="Who sees our notes: a publish picklist value or label "
        "(1 All Autotask Users, 2 Internal Users)")
    note_title: str = Field("msphub", min_length=1, max_length=150,
                            description="Title of every note we post (the marker follows)")
    attachment_publish: int = Field(1, ge=1, description="publish value of our attachments")
    max_attachment_bytes: int = Field(
        6_000_000, ge=1024, le=7_000_000,
        description="Largest file we upload (Autotask refuses about 6-7 MB per file)")
    attachment_window_bytes: int = Field(
        10_000_000, ge=1024, description="Autotask's cap on attachment bytes per 5 minutes")
    requests_per_hour: int = Field(
        10_000, ge=1, description="Our share of the database's 10,000 requests per hour "
        "(every integration of the tenant counts against the same threshold)")
    requests_per_minute: int = Field(
        600, ge=1, description="Per-minute budget the hub enforces (smooths bursts)")
    endpoint_concurrency: int = Field(
        3, ge=1, le=3, description="Concurrent requests per endpoint (Autotask allows 3)")
    threshold_check_interval: timedelta = Field(
        timedelta(minutes=5), description="How often ThresholdInformation is read")
    slow_above: float = Field(
        0.5, gt=0, lt=1, description="Fraction of the hourly threshold above which every "
        "request is delayed (more as usage rises)")
    stop_above: float = Field(
        0.95, gt=0, le=1, description="Fraction above which requests wait for the window")
    max_slowdown_seconds: float = Field(2.0, ge=0, le=10)
    page_size: int = Field(500, ge=1, le=500, description="MaxRecords per query page")
    poll_lookback: timedelta = Field(timedelta(minutes=3))
    backfill: timedelta = Field(
        timedelta(0), description="How far back the very first ticket poll reads")
    contract_backfill: timedelta = Field(
        timedelta(0), description="The first contracts poll reports contracts starting this "
        "long before today, or later (older contracts are not new clients)")
    contract_state_window: timedelta = Field(
        timedelta(days=365), description="contract_states reports contracts that started "
        "within this window (a cancelled one cancels its onboarding)")
    picklist_ttl: timedelta = Field(timedelta(hours=1))
    webhook_fields: tuple[str, ...] = DEFAULT_SUBSCRIBED
    webhook_display_fields: tuple[str, ...] = DEFAULT_DISPLAY_ALWAYS
    notification_email: str | None = Field(None, max_length=150)
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("zone_lookup_url")
    @classmethod
    def _lookup(cls, value: str) -> str:
        return _origin(value, "zone_lookup_url")

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not 16 <= len(value.get_secret_value()) <= 64:
            raise ValueError("webhook_secret must be 16 to 64 characters (Autotask's limit)")
        return value

    @field_validator("queues")
    @classmethod
    def _queues(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not q.strip() for q in value)):
            raise ValueError("queues must name at least one queue, or be omitted")
        return value

    @model_validator(mode="after")
    def _hosts(self) -> AutotaskConfig:
        """Refuse a non-Autotask lookup host unless ``allow_any_host`` (the sandbox)."""
        host = urlsplit(self.zone_lookup_url).hostname or ""
        if not self.allow_any_host and not ZONE_HOST.fullmatch(host):
            raise ValueError(f"zone_lookup_url host {host!r} is not webservices*.autotask.net;"
                             " set allow_any_host for a sandbox")
        if self.stop_above <= self.slow_above:
            raise ValueError("stop_above must be greater than slow_above")
        return self

    def zone_allowed(self, url: str) -> bool:
        """True when a zone URL from zoneInformation may receive our credentials."""
        parts = urlsplit(url)
        if self.allow_any_host:
            return parts.scheme in ("http", "https") and bool(parts.hostname)
        return parts.scheme == "https" and bool(ZONE_HOST.fullmatch(parts.hostname or ""))

