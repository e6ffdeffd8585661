"""Process-wide settings: ``MSPHUB_*`` environment variables and an optional ``.env`` file."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.logging import redact_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _default_database_url(data: dict[str, Any]) -> str:
    """SQLite file inside ``data_dir``; ``data_dir`` is validated (absolute) before this runs."""
    data_dir = Path(data.get("data_dir", Path("data"))).expanduser().resolve()
    return f"sqlite:///{(data_dir / 'msphub.db').as_posix()}"


class Settings(BaseSettings):
    """Everything an entry point needs to start the hub.

    Values come from, highest priority first: constructor arguments, ``MSPHUB_*``
    environment variables, the ``.env`` file in the working directory (if any), and
    the defaults below. Relative directories are made absolute against the working
    directory at construction time, so a later ``chdir`` does not move them.

    Only entry points (CLI, worker, scheduler, API factory) call :func:`get_settings`;
    everything else receives the values it needs through its constructor.
    """

    model_config = SettingsConfigDict(
        env_prefix="MSPHUB_",
        env_file=".env",
        env_file_encoding="utf-8",
        # A missing .env is fine (pydantic-settings skips it). Unknown MSPHUB_* keys
        # are ignored rather than fatal: MSPHUB_TEST_* variables share the prefix.
        extra="ignore",
        frozen=True,
    )

    # Declared before database_url: its default is computed from the validated value.
    data_dir: Path = Field(
        default=Path("data"),
        description="Where the hub keeps its own files (the default SQLite database).",
    )
    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL. Default: sqlite:///<data_dir>/msphub.db. "
        "Production: postgresql+psycopg://user:pass@host:5432/msphub.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the dramatiq broker. Unset: actors run in-process.",
    )
    redis_namespace: str = Field(
        default="msphub", pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every Redis key (queues, budgets, locks), so several "
        "deployments can share one Redis.",
    )
    config_dir: Path = Field(
        default=Path("config"), description="Connector instances, team roles, calendars."
    )
    mappings_dir: Path = Field(default=Path("mappings"), description="Mapping rule files.")
    playbooks_dir: Path = Field(default=Path("playbooks"), description="Checklist templates.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="How PSAs and browsers reach the hub; used in links and callback URLs.",
    )
    host: str = Field(default="127.0.0.1", description="Address the API server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API server binds to.")
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto",
        description="auto: console when stderr is a terminal, JSON otherwise.",
    )
    log_level: LogLevel = Field(default="INFO", description="Minimum level that is logged.")
    secret_key: SecretStr | None = Field(
        default=None, description="Signs dashboard sessions and links. Never logged."
    )
    webhook_max_body: int = Field(
        default=1_048_576, gt=0, description="Largest accepted webhook body, in bytes."
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for the audit chain (MSPHUB_AUDIT_KEY, at least 32 characters). "
        "Keep it outside the database and its backups; see docs/audit.md.",
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="Where signed checkpoints of the audit chain's head are appended "
        "(default: <data_dir>/audit-checkpoints.jsonl).",
    )
    webhook_read_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a webhook body may take to arrive (else 408)."
    )
    worker_threads: int = Field(default=8, ge=1, description="Threads per worker process.")
    batch_size: int = Field(
        default=0, ge=0, le=500,
        description="Inbox events processed per transaction (0: 50 on PostgreSQL, 10 on "
        "SQLite, whose single write lock makes webhook receipts wait for a batch).",
    )
    outbox_lease_seconds: float = Field(
        default=60.0, gt=0,
        description="How long a worker holds a note while sending it; after a crash the "
        "note is retried (marker-checked) once this has passed.",
    )
    provisional_clients: bool = Field(
        default=False,
        description="Process events from a vendor client no hub client is linked to under "
        "an automatically created provisional client (flagged, audited). Off: such an "
        "event fails visibly until an admin links the record (`msphub clients link`).",
    )
    env: Literal["development", "production"] = Field(
        default="development", description="Deployment flavour."
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for email notifications (unset: no email; "
        "email notifications end as dead letters saying so)."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587: submission).")
    smtp_user: str | None = Field(default=None, description="SMTP login; unset: no AUTH.")
    smtp_password: SecretStr | None = Field(default=None,
                                            description="SMTP password. Never logged.")
    smtp_from: str = Field(
        default="msphub <msphub@localhost>", description="From: of notification emails."
    )
    smtp_starttls: bool = Field(
        default=True, description="Upgrade the connection with STARTTLS before AUTH (refused "
        "if the server does not offer it). Off only for a relay on localhost."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the SMTP server's certificate "
        "(default: the system's trust store)."
    )
    smtp_timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP operation.")
    notification_templates_dir: Path | None = Field(
        default=None, description="Your own notification templates (Jinja2), looked up before "
        "the shipped ones (default: <config_dir>/templates/notifications); copy a shipped file "
        "there to rebrand it."
    )
    notification_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Sends of one notification before it is a dead "
        "letter (backoff 30 s, doubling, at most 1 h between tries)."
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr()/str() may end up in logs or tracebacks: hide URL passwords too.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    @field_validator("data_dir", "config_dir", "mappings_dir", "playbooks_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("database_url", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        # `MSPHUB_DATABASE_URL=` (blank) means "use the default", as if unset.
        if isinstance(value, str) and not value.strip():
            return _default_database_url(info.data)
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `MSPHUB_REDIS_URL=` in a .env file means "no Redis", not "Redis at ''".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("audit_key", mode="before")
    @classmethod
    def _audit_key(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # blank means "no key"
        if isinstance(value, str) and len(value) < 32:
            raise ValueError("audit_key must be at least 32 characters")
        return value

    @property
    def notification_templates(self) -> Path:
        """Where an MSP's own notification templates are looked up first."""
        return self.notification_templates_dir or self.config_dir / "templates" / "notifications"

    @field_validator("smtp_host", "smtp_user", "smtp_password", "smtp_ca_file",
                     "notification_templates_dir", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # `MSPHUB_SMTP_HOST=` in a .env file means "no SMTP", not a host named ''.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def audit_checkpoints(self) -> Path:
        """The checkpoint file (``audit_checkpoint_file`` or one under ``data_dir``)."""
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        # Callers build links as f"{public_url}/runs/{id}".
        return value.rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read once. Only entry points call this.

    Tests build ``Settings(...)`` directly, or call ``get_settings.cache_clear()``.
    """
    return Settings()
