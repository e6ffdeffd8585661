"""Connector contracts: errors, capability protocols, manifest and the plugin registry.

```
ConnectorError           base; attributes .source, .status, .request_id
  TransientError         retry with backoff (timeouts, 408, 5xx); .maybe_applied
    RateLimited          .retry_after seconds (429, or the request budget is spent)
  PermanentError         never retried (4xx other than 408/429, bad vendor data)
    AuthFailed           401/403: disable the source and alert
    TLSFailed            the vendor's certificate did not verify (set ca_bundle); .host
    NotFound             404: the record is gone
  WebhookRejected        .status 401: bad secret or signature, answer with .status
    MalformedPayload     .status 400: the body cannot be parsed; names the bad field
  RegistryError          a connector plugin is missing, mis-registered or misconfigured
    UnknownConnector     .known lists the registered vendors
    InvalidConfig        .problems lists (field path, message); never echoes values
```

Messages stay short and never carry secrets, tokens or bodies; context goes in attributes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, cast, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.fields import FieldSpec
from hub.core.events import Event, EventKind, SubjectRef

ENTRY_POINT_GROUP = "msphub.connectors"
THIN = "_thin"  # data key marking a webhook event that still needs Enricher.enrich


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.status = status
        self.request_id = request_id


class TransientError(ConnectorError):
    """The request may succeed later; retry with backoff.

    ``maybe_applied`` is True when a non-idempotent request (a POST) failed after it may
    have reached the vendor: look for its effect (``TicketWriter.find_note``) before resending.
    """

    maybe_applied: bool = False


class RateLimited(TransientError):
    """The vendor (or our own request budget) asked us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying will not help."""


class AuthFailed(PermanentError):
    """Credentials were refused or lack a permission."""


class TLSFailed(PermanentError):
    """The vendor's TLS certificate did not verify against the trusted CAs; an admin must
    fix the certificate or the source's ``ca_bundle``."""

    def __init__(self, message: str, *, host: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.host = host


class NotFound(PermanentError):
    """The vendor has no such record."""


class WebhookRejected(ConnectorError):
    """An incoming webhook failed authentication; answer with ``.status``."""

    def __init__(self, message: str, *, status: int = 401, **kw: Any) -> None:
        super().__init__(message, status=status, **kw)


class MalformedPayload(WebhookRejected):
    """A webhook (or polled record) body cannot be parsed; the message names the field."""

    def __init__(self, message: str, *, status: int = 400, **kw: Any) -> None:
        super().__init__(message, status=status, **kw)


class RegistryError(ConnectorError):
    """A connector plugin cannot be loaded or built."""


class UnknownConnector(RegistryError):
    """No connector is registered under that vendor name."""

    def __init__(self, vendor: str, known: list[str]) -> None:
        super().__init__(f"unknown connector {vendor!r}; known: {', '.join(known) or 'none'}")
        self.vendor = vendor
        self.known = known


class InvalidConfig(RegistryError):
    """An instance configuration failed validation (values are never echoed)."""

    def __init__(self, vendor: str, problems: list[tuple[str, str]]) -> None:
        text = "; ".join(f"{path or '<root>'}: {msg}" for path, msg in problems)
        super().__init__(f"invalid {vendor} config: {text}")
        self.problems = problems


class Cursor(BaseModel):
    """Position in a stream after a page; stored by the hub per ``(source, stream)``.

    ``position`` strings of one stream sort in stream order (connectors use fixed-width
    formats such as ``2024-05-01T12:00:00Z``), so the hub can check they never go back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    position: str


@dataclass(frozen=True)
class Page:
    """Events of one fetched page and the cursor that is safe to save with them."""

    events: list[Event]
    cursor: Cursor


@dataclass(frozen=True)
class WebhookRequest:
    """An incoming webhook as the HTTP layer saw it; header names are lower-cased."""

    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    path_secret: str | None = None
    # the connector's scratch space for this delivery: what ``verify`` parsed, ``parse``
    # need not parse again
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})


class NoteRef(BaseModel):
    """A note posted on (or found in) a PSA ticket."""

    model_config = ConfigDict(frozen=True)

    ticket: SubjectRef
    id: str


class Capability(StrEnum):
    """What a connector can do; each name matches one protocol below."""

    POLLER = "poller"
    WEBHOOK_RECEIVER = "webhook_receiver"
    ENRICHER = "enricher"
    TICKET_WRITER = "ticket_writer"
    WEBHOOK_REGISTRAR = "webhook_registrar"


class StreamSpec(BaseModel):
    """One pollable stream; ``sorted`` False means save the cursor only at the end."""

    model_config = ConfigDict(frozen=True)

    sorted: bool = True
    kinds: frozenset[EventKind] = frozenset()
    description: str = ""


class Manifest(BaseModel):
    """Static description of a connector, readable without calling the vendor."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    vendor: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    display_name: str
    kind: Literal["psa", "rmm", "generic"]
    capabilities: frozenset[Capability]
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    default_poll_interval: timedelta = timedelta(minutes=5)
    config_model: type[BaseModel]
    sandbox: str | None = Field(
        default=None, description="'module:attr' of a Sandbox class for demos and contract tests"
    )
    fields: dict[EventKind, tuple[FieldSpec, ...]] = Field(
        default_factory=dict,
        description="The normalised data fields each event kind carries (`msphub mappings "
        "fields`); `mappings check` refuses a rule reading a field no source emits",
    )

    @model_validator(mode="after")
    def _streams_for_pollers(self) -> Manifest:
        if Capability.POLLER in self.capabilities and not self.streams:
            raise ValueError("a poller must declare at least one stream")
        return self


@runtime_checkable
class RequestBudget(Protocol):
    """The gate every request of one connector instance passes, shared by every worker:
    requests allowed per window, and the vendor's source-wide pause (Retry-After)."""

    def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` requests; block up to a bound, else raise ``RateLimited``."""

    def remaining(self) -> int | None:
        """Requests left in the current window, or None when unknown."""

    def pause(self, seconds: float) -> bool:
        """The vendor asked for silence: hold every request of the source for ``seconds``
        (a longer pause already set is kept); True when this call started or extended it.

        ``send`` reads ``paused_for`` before every request it sends."""

    def paused_for(self) -> float:
        """Seconds left of the source's pause (0.0 when requests may go)."""


@runtime_checkable
class Connector(Protocol):
    """What every connector class has, whatever its capabilities."""

    manifest: ClassVar[Manifest]
    name: str

    def __init__(
        self,
        name: str,
        config: Any,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
    ) -> None: ...

    def close(self) -> None:
        """Release HTTP connections."""


@runtime_checkable
class Poller(Protocol):
    """Incremental reads with a cursor (STYLE §4)."""

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of events newer than ``cursor``; each page's cursor is safe to save."""


@runtime_checkable
class WebhookReceiver(Protocol):
    """Authenticates and parses vendor webhooks."""

    def verify(self, request: WebhookRequest) -> None:
        """Raise ``WebhookRejected`` unless the request is authentic."""

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Turn a verified body into events; raise ``MalformedPayload`` naming the bad field."""


@runtime_checkable
class Enricher(Protocol):
    """Completes thin webhook events with one fetch (I/O)."""

    def enrich(self, event: Event) -> list[Event]:
        """Fetch the full record behind a thin event (``is_thin``); may yield 0..n events."""


@runtime_checkable
class TicketWriter(Protocol):
    """PSA write-back; every write carries an idempotency ``key`` marker."""

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        """Add a note with ``key``'s marker (may raise TransientError.maybe_applied)."""

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """The recent note carrying ``key``'s marker, if any."""

    def attach(
        self, ticket: SubjectRef, filename: str, content: bytes, *, title: str, key: str
    ) -> str:
        """Attach a file once per ``key``; returns the vendor's document id."""

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Set the ticket's status by name."""


@runtime_checkable
class TicketLinker(Protocol):
    """Optional: where a person opens a ticket in the vendor's web UI (the dashboard links it)."""

    def ticket_url(self, ticket_id: str) -> str | None:
        """The ticket's address in the PSA's web UI, or None when it cannot be built."""


@dataclass(frozen=True)
class Linkable:
    """A vendor record an admin links to a hub client (an RMM site or organization, a PSA
    company), with the hints the vendor gives about which client it is.

    ``psa_company_id`` / ``psa_company_name``: the PSA company an RMM's own PSA
    integration maps this record to (Datto's ``autotaskCompanyId``), and ``psa_vendor``
    the vendor of that PSA (``autotask``), so the hub compares the id only with links to
    sources of that vendor.
    """

    type: str  # ClientRef.type of its events: site | organization | customer | company …
    id: str
    name: str | None = None
    psa_vendor: str | None = None
    psa_company_id: str | None = None
    psa_company_name: str | None = None


@runtime_checkable
class Directory(Protocol):
    """Optional: lists the records events name as their ``client``, for link suggestions
    (``msphub clients suggest``) and drift checks (``msphub clients check``)."""

    def linkables(self) -> list[Linkable]:
        """Every record of the account that could be linked to a hub client (I/O)."""


@runtime_checkable
class WebhookRegistrar(Protocol):
    """Registers our callback URL with the vendor."""

    def register_webhooks(self, url: str) -> list[str]:
        """Make the vendor call ``url``; idempotent; returns the vendor's registration ids."""

    def remove_webhooks(self, url: str) -> int:
        """Remove registrations for ``url``; idempotent; returns how many were removed."""


@runtime_checkable
class Sandbox(Protocol):
    """A local simulator of a vendor API for demos, contract tests and benchmarks."""

    @property
    def url(self) -> str:
        """Base URL of the running simulator (``http://127.0.0.1:<port>``)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def connector_config(self, *, valid_credentials: bool = True) -> dict[str, Any]:
        """Raw config for ``build_connector`` pointing at this sandbox (small pages)."""

    def seed(self, stream: str, count: int) -> None:
        """Create ``count`` records that the connector's ``stream`` will return."""

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (and ``Retry-After``)."""


@runtime_checkable
class WebhookSandbox(Protocol):
    """Optional for a ``Sandbox`` whose vendor sends webhooks: deliveries built exactly as
    the vendor sends them to the hub, so the contract suite checks every receiver alike.

    Every delivery is authenticated for the sandbox's ``connector_config()`` (its
    ``webhook_secret``); nothing is POSTed: the caller hands the request to the connector.
    """

    @property
    def signs_webhooks(self) -> bool:
        """True when the vendor signs the body (an altered body fails ``verify``); False
        when only a shared secret is checked and the connector re-reads the record."""

    def webhook_delivery(self, event: str = "created", *, thin: bool = False
                         ) -> WebhookRequest:
        """A delivery about a record the sandbox holds (made for the call).

        Args:
            event: ``created`` (a new ticket, a raised alert) or ``updated`` (a changed
                ticket, a resolved alert).
            thin: the vendor's ids-only form where it has two (ConnectWise's callbacks
                without ``Entity``); vendors with one form ignore it.
        """

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` authenticated as the vendor authenticates deliveries (headers, path or
        query secret, signature over ``body``); with ``secret`` that secret is used in place
        of the configured one (a forgery)."""

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery to a subscribed URL was attempted; False on
        timeout."""


@runtime_checkable
class WebhookSetupSandbox(Protocol):
    """Optional for a ``WebhookSandbox`` whose vendor's webhooks an admin sets up in the
    vendor's UI (the connector is no ``WebhookRegistrar``)."""

    def send_webhooks_to(self, url: str) -> None:
        """Deliver the vendor's webhooks to ``url``, set up as the connector's README says."""


@runtime_checkable
class TicketSandbox(Protocol):
    """Optional for a PSA ``Sandbox``: tickets the writer may write to, and what they hold."""

    @property
    def completed_status(self) -> str:
        """The name of a status that completes a ticket in this sandbox."""

    def a_ticket(self) -> SubjectRef:
        """A new open ticket (``source`` None) that notes, files and statuses may go to."""

    def ticket_status(self, ticket: SubjectRef) -> str:
        """The ticket's current status name."""

    def attachment_ids(self, ticket: SubjectRef) -> list[str]:
        """Ids of the files attached to the ticket, as ``TicketWriter.attach`` returns them."""

    def status_writes(self, ticket: SubjectRef) -> int:
        """API writes that set the ticket's status so far, counted even when the value did
        not change (a no-op ``set_status`` adds none)."""

    def touch_ticket(self, ticket: SubjectRef) -> None:
        """A technician (not our API user) changes the ticket; the vendor's webhooks for it
        go to the subscribed URLs."""

    def lose_next_note_answer(self) -> None:
        """Store the next posted note, then answer 500 instead of its id (the ambiguous
        failure after which the hub looks for the note before posting it again)."""


CAPABILITY_PROTOCOLS: dict[Capability, type] = {
    Capability.POLLER: Poller,
    Capability.WEBHOOK_RECEIVER: WebhookReceiver,
    Capability.ENRICHER: Enricher,
    Capability.TICKET_WRITER: TicketWriter,
    Capability.WEBHOOK_REGISTRAR: WebhookRegistrar,
}


def is_thin(event: Event) -> bool:
    """True when a webhook event carries only ids and must go through ``enrich``."""
    return bool(event.data.get(THIN))


def missing_capabilities(cls: type) -> list[Capability]:
    """Capabilities the manifest declares but the class does not implement."""
    manifest: Manifest = cls.manifest  # type: ignore[attr-defined]
    missing = []
    for capability in manifest.capabilities:
        proto = CAPABILITY_PROTOCOLS[capability]
        names = [n for n in vars(proto) if not n.startswith("_") and callable(vars(proto)[n])]
        if not all(callable(getattr(cls, n, None)) for n in names):
            missing.append(capability)
    return missing


@cache
def load_registry() -> dict[str, type[Connector]]:
    """Load connector classes from the ``msphub.connectors`` entry-point group.

    Raises:
        RegistryError: an entry name differs from its class's ``manifest.vendor``.
    """
    registry: dict[str, type[Connector]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        manifest = getattr(cls, "manifest", None)
        if not isinstance(manifest, Manifest):
            raise RegistryError(f"entry point {ep.name!r} has no Manifest")
        if manifest.vendor != ep.name:
            raise RegistryError(
                f"entry point {ep.name!r} names vendor {manifest.vendor!r}; they must match"
            )
        registry[ep.name] = cls
    return registry


def load_sandbox(vendor: str) -> type[Sandbox] | None:
    """The sandbox class named by the vendor's manifest, or None when it has none."""
    spec = get_connector_class(vendor).manifest.sandbox
    if spec is None:
        return None
    module_name, _, attr = spec.partition(":")
    cls: type[Sandbox] = getattr(import_module(module_name), attr)
    return cls


def get_connector_class(vendor: str) -> type[Connector]:
    """The registered class for ``vendor``; raises ``UnknownConnector`` listing known names."""
    registry = load_registry()
    try:
        return registry[vendor]
    except KeyError:
        raise UnknownConnector(vendor, sorted(registry)) from None


def validate_config(vendor: str, raw_config: Mapping[str, Any]) -> BaseModel:
    """Validate a raw config dict with the vendor's ``config_model`` (secrets → SecretStr)."""
    model = get_connector_class(vendor).manifest.config_model
    try:
        return model.model_validate(dict(raw_config))
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise InvalidConfig(vendor, problems) from None


def build_connector(
    vendor: str,
    name: str,
    raw_config: Mapping[str, Any],
    *,
    transport: httpx.BaseTransport | None = None,
    budget: RequestBudget | None = None,
    token_store: Any = None,
) -> Connector:
    """Validate ``raw_config`` and construct the ``vendor`` connector named ``name``.

    ``token_store`` (a ``connectors.oauth.TokenStore``) goes to connectors that take one
    (OAuth2 vendors), so every worker of the hub shares one token per source.
    """
    config = validate_config(vendor, raw_config)
    cls = get_connector_class(vendor)
    if token_store is not None and _takes_token_store(cls):
        factory: Any = cls
        return cast(Connector, factory(name, config, transport=transport, budget=budget,
                                       token_store=token_store))
    return cls(name, config, transport=transport, budget=budget)


@cache
def _takes_token_store(cls: type) -> bool:
    return "token_store" in inspect.signature(cls).parameters
