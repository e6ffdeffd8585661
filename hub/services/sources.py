"""Connector instances (``config/connectors.yaml``): which PSAs/RMMs the hub talks to.

```yaml
sources:
  cw-prod:                       # instance name: events carry it as `source`
    vendor: connectwise          # a registered connector (entry point msphub.connectors)
    enabled: true
    poll: {enabled: true, interval: 5m}
    requests_per_minute: 600     # request budget shared by every worker
    ca_bundle: certs/psa-ca.pem  # on-premise PSA with its own CA (PEM; relative to this file)
    config:                      # validated by the connector's config model
      site: na.myconnectwise.net
      private_key: ${CW_PRIVATE_KEY}   # secrets only as ${ENV_VAR} references
```
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.base import (
    Connector,
    InvalidConfig,
    RegistryError,
    RequestBudget,
    build_connector,
    get_connector_class,
)
from connectors.budget import make_budget
from connectors.oauth import make_token_store
from hub.config.yamlio import YamlDoc, expand_env, read_yaml, validation_error
from hub.errors import Loc

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")


def parse_interval(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h`` → timedelta."""
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"invalid interval {text!r}; use e.g. 30s, 5m or 1h")
    amount, unit = int(match[1]), match[2]
    return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600}[unit])


class PollSettings(BaseModel):
    """Whether and how often the hub polls this source (reconciliation even with webhooks)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    interval: str | None = Field(default=None, description="e.g. 60s, 5m (default: vendor's)")
    streams: list[str] | None = Field(default=None, description="Default: all of the vendor's.")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        if value is not None:
            parse_interval(value)
        return value


class SourceSpec(BaseModel):
    """One connector instance as written in the file."""

    model_config = ConfigDict(extra="forbid")

    vendor: str
    enabled: bool = True
    poll: PollSettings = PollSettings()
    requests_per_minute: int | None = Field(
        default=None, ge=1,
        description="Request budget per minute, shared by every worker (default: the "
        "connector config's requests_per_minute, else 600).",
    )
    completed_status: str | None = Field(
        default=None,
        description="PSA ticket status to set when a run launched from the ticket completes.",
    )
    ca_bundle: str | None = Field(
        default=None, min_length=1,
        description="PEM file of the CA certificates this source's TLS certificate is "
        "checked against (on-premise PSAs with their own CA); relative to this file. "
        "Default: the system's trusted CAs.",
    )
    config: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Source:
    """A configured, constructed connector instance."""

    name: str
    spec: SourceSpec
    connector: Connector
    budget: RequestBudget | None = None
    # sha256 of the vendor and its expanded config: new credentials, new fingerprint
    fingerprint: str = ""

    @property
    def vendor(self) -> str:
        return self.spec.vendor

    def poll_interval(self) -> timedelta:
        """Configured interval, else the connector's default."""
        if self.spec.poll.interval:
            return parse_interval(self.spec.poll.interval)
        return self.connector.manifest.default_poll_interval

    def remaining_budget(self) -> int | None:
        """Requests left in the current window of this instance's shared budget."""
        budget = self.budget or getattr(self.connector, "budget", None)
        return budget.remaining() if budget is not None else None

    def paused_for(self) -> float:
        """Seconds left of the vendor's Retry-After pause of this instance (0.0: none)."""
        budget = self.budget or getattr(self.connector, "budget", None)
        return float(budget.paused_for()) if budget is not None else 0.0

    def streams(self) -> list[str]:
        """Streams to poll."""
        if self.spec.poll.streams:
            return self.spec.poll.streams
        return list(self.connector.manifest.streams)


@dataclass
class Sources:
    """Every configured source, by name."""

    items: dict[str, Source] = field(default_factory=dict)

    def get(self, name: str) -> Source | None:
        return self.items.get(name)

    def __iter__(self) -> Any:
        return iter(self.items.values())

    def close(self) -> None:
        for src in self.items.values():
            src.connector.close()


def config_fingerprint(vendor: str, config: Mapping[str, Any]) -> str:
    """A digest of what the source connects with; it changes when the credentials do."""
    text = json.dumps({"vendor": vendor, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _ca_transport(doc: YamlDoc, path: Path, bundle: str, loc: Loc) -> httpx.HTTPTransport:
    """An HTTP transport that trusts the CAs of ``bundle`` (relative to the config file).

    Raises:
        ConfigError: the file is missing or holds no usable PEM certificates.
    """
    file = Path(bundle).expanduser()
    if not file.is_absolute():
        file = path.parent / file
    if not file.is_file():
        raise doc.error(f"CA bundle {str(file)!r} does not exist", loc)
    try:
        context = ssl.create_default_context(cafile=str(file))
    except (ssl.SSLError, ValueError) as exc:
        raise doc.error(f"CA bundle {str(file)!r} holds no usable PEM certificates "
                        f"({type(exc).__name__})", loc) from exc
    return httpx.HTTPTransport(verify=context)


def load_sources(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    redis_client: Any = None,
    transport: httpx.BaseTransport | None = None,
    namespace: str = "msphub",
) -> Sources:
    """Load and construct every enabled connector instance.

    Args:
        env: what ``${VAR}`` references resolve against: pass
            ``config_env(<the .env file>)`` so the ``.env`` file counts too; the process
            environment alone when omitted.
        transport: used for every source when given (tests); otherwise a source with
            ``ca_bundle`` gets a transport trusting that bundle.

    Raises:
        ConfigError: naming the file, line and key (unknown vendor, bad config, missing env var).
    """
    if not path.exists():
        return Sources()
    doc = read_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or not isinstance(data.get("sources", {}), dict):
        raise doc.error("expected a top-level 'sources:' mapping of instance name to settings")
    extra = sorted(set(data) - {"sources"})
    if extra:
        raise doc.error(f"unknown top-level key {extra[0]!r}", (extra[0],))
    out: dict[str, Source] = {}
    for name, raw in (data.get("sources") or {}).items():
        loc = ("sources", str(name))
        try:
            spec = SourceSpec.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(doc, exc, loc) from exc
        if not spec.enabled:
            continue
        try:
            get_connector_class(spec.vendor)
        except RegistryError as exc:
            raise doc.error(str(exc), (*loc, "vendor")) from exc
        config = expand_env(spec.config, env, where=doc, loc=(*loc, "config"))
        source_transport = transport
        if spec.ca_bundle is not None and transport is None:
            source_transport = _ca_transport(doc, path, spec.ca_bundle, (*loc, "ca_bundle"))
        per_minute = spec.requests_per_minute or int(config.get("requests_per_minute", 600))
        budget: RequestBudget = make_budget(str(name), per_minute, redis_client=redis_client,
                                            namespace=namespace)
        try:
            # OAuth2 vendors: one token per source for every worker (Redis), else per process
            store = make_token_store(str(name), redis_client=redis_client, namespace=namespace) \
                if redis_client is not None else None
            connector = build_connector(spec.vendor, str(name), config,
                                        transport=source_transport, budget=budget,
                                        token_store=store)
        except InvalidConfig as exc:
            key, msg = exc.problems[0] if exc.problems else ("", str(exc))
            where = (*loc, "config", *key.split("."))
            raise doc.error(msg.removeprefix("Value error, "), where) from exc
        out[str(name)] = Source(str(name), spec, connector, budget,
                                fingerprint=config_fingerprint(spec.vendor, config))
    return Sources(out)
