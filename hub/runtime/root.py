"""The composition root: the one place that builds settings into a working hub.

Every entry point (``serve``, ``worker``, ``scheduler``, the CLI, ``demo``, the tests)
calls :func:`build_context` or :func:`build_runtime` once and passes what it gets down.
Nothing else constructs services, brokers or connectors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import dramatiq
import redis
import structlog
from dramatiq.rate_limits.backends import RedisBackend, StubBackend
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import load_registry
from hub.config.calendars import load_calendars
from hub.config.clients import load_clients
from hub.config.fields import field_catalog
from hub.config.live_rules import RuleHolder
from hub.config.playbooks import PlaybookSource
from hub.config.team import Roster, load_team
from hub.config.yamlio import config_env
from hub.core.events import KNOWN_VENDORS
from hub.runtime.actors import declare_actors
from hub.runtime.broker import Dispatch, make_broker
from hub.runtime.delivery import deliver_now, handoff
from hub.runtime.process import Runtime
from hub.services.context import HubContext, utcnow
from hub.services.deadletters import mark_dead
from hub.services.directory import ClientDirectory
from hub.services.notes import OutboxSink, dispatch_after_commit, ticket_writers
from hub.services.notifications import Notifier, NotifyingSink
from hub.services.runs import RunService
from hub.services.scheduled_launches import check as check_schedules
from hub.services.sources import Sources, load_sources
from hub.settings import Settings
from hub.store import audit
from hub.store.db import make_engine, make_sessionmaker, transaction

log = structlog.get_logger()

Clock = Callable[[], datetime]
# how a process hands the notes a commit wrote to delivery: a message to the workers,
# or (a CLI command in embedded mode, where no worker runs here) one attempt right away
NoteDelivery = Literal["queue", "inline"]


def build_context(settings: Settings, *, clock: Clock = utcnow,
                  engine: Engine | None = None) -> HubContext:
    """The database and the services over it (no broker, no connectors).

    Raises:
        ConfigError: a playbook, team or calendar file is invalid.
    """
    engine = engine or make_engine(settings.database_url)
    env = config_environment()
    calendars = load_calendars(settings.config_dir / "calendars.yaml", env=env)
    team = load_team(settings.config_dir / "team.yaml", calendars, env=env)
    # unknown roles and assignees in a playbook are warned about at each load
    playbooks = PlaybookSource(settings.playbooks_dir, roster=Roster.of(
        team, str(settings.config_dir / "team.yaml")))
    clients = ClientDirectory(clock=clock, provisional=settings.provisional_clients)
    runs = RunService(library=playbooks, team=team, calendars=calendars, clock=clock,
                      clients=clients,
                      notes=NotifyingSink(
                          OutboxSink(settings.public_url, ticket_writers(settings.config_dir)),
                          Notifier(settings, team)))
    return HubContext(settings=settings, engine=engine, sessions=audited_sessions(engine, settings),
                      playbooks=playbooks, team=team, calendars=calendars, clients=clients,
                      runs=runs, clock=clock)


def config_environment() -> dict[str, str]:
    """What ``${VAR}`` in config/*.yaml resolves against: the process environment over the
    ``.env`` file the settings are read from."""
    env_file = Settings.model_config.get("env_file")
    return config_env(env_file if isinstance(env_file, str | Path) else None)


def audited_sessions(engine: Engine, settings: Settings) -> sessionmaker[Session]:
    """Sessions whose audit entries are keyed with ``MSPHUB_AUDIT_KEY`` (when set) and whose
    commits export a checkpoint of the chain's head outside the database."""
    sessions = make_sessionmaker(engine)
    key = settings.audit_key.get_secret_value() if settings.audit_key else None
    audit.configure(sessions, key=key, checkpoint_file=settings.audit_checkpoints)
    return sessions


def redis_client_for(redis_url: str | None) -> redis.Redis | None:
    """A Redis client for the URL, or None in embedded mode."""
    return redis.Redis.from_url(redis_url) if redis_url else None


def configured_sources(settings: Settings, redis_client: Any = None) -> Sources:
    """The instances of ``<config_dir>/connectors.yaml``, budgets in this deployment's
    Redis namespace when a client is given."""
    return load_sources(settings.config_dir / "connectors.yaml", redis_client=redis_client,
                        namespace=settings.redis_namespace, env=config_environment())


def build_runtime(settings: Settings, *, clock: Clock = utcnow, engine: Engine | None = None,
                  broker: dramatiq.Broker | None = None, sources: Sources | None = None,
                  notes: NoteDelivery = "queue", rules: bool = True) -> Runtime:
    """Everything one process runs on: services, sources, live rules, broker and actors.

    Args:
        notes: how the notes a commit wrote are handed to delivery (see ``NoteDelivery``).
        rules: load the mapping rules and schedules; a CLI command that only works on
            runs passes False, so a broken mapping file does not stop it.

    Raises:
        ConfigError: a playbook, mapping, team, calendar, schedule or connector file is
            invalid.
    """
    ctx = build_context(settings, clock=clock, engine=engine)
    redis_client = redis_client_for(settings.redis_url)
    if sources is None:
        sources = configured_sources(settings, redis_client)
    # `from:` may name any registered vendor (installed or not yet configured) or
    # a configured instance; anything else is a typo worth refusing
    names = {s.name for s in sources} | {s.vendor for s in sources} | set(load_registry())
    names |= KNOWN_VENDORS
    # a rule reading a field no source in its `from:` emits is refused (did you mean …)
    catalog = field_catalog(settings.config_dir / "connectors.yaml")
    if rules:
        holder = RuleHolder.load(settings.mappings_dir, ctx.playbooks, sources=names,
                                 catalog=catalog)
        schedules = check_schedules(ctx)  # a broken file stops start-up with file and line
    else:
        holder = RuleHolder(settings.mappings_dir, ctx.playbooks, sources=names,
                            catalog=catalog)
        schedules = []

    def on_dead(actor: str, item_id: int, error: str) -> None:
        mark_dead(ctx, actor, item_id, error)

    broker = broker or make_broker(settings.redis_url, settings.redis_namespace,
                                   on_dead=on_dead)
    backend: Any = (RedisBackend(client=redis_client) if redis_client is not None
                    else StubBackend())  # type: ignore[no-untyped-call]
    rt = Runtime(ctx=ctx, rules=holder, sources=sources, broker=broker,
                 dispatch=Dispatch(broker), limiter_backend=backend,
                 namespace=settings.redis_namespace, schedules=schedules)
    declare_actors(broker, rt)
    if notes == "inline" and not settings.redis_url:
        dispatch_after_commit(ctx.sessions, lambda ids: deliver_now(rt, ids, fallback=None))
    else:
        # an actor collects its own notes and posts them right away (runtime/delivery.py)
        dispatch_after_commit(ctx.sessions, handoff(rt.dispatch.notes))
    return rt


def sync_clients(ctx: HubContext) -> int:
    """Make the client directory hold what ``config/clients.yaml`` declares.

    Raises:
        ConfigError: the file is invalid, or links a record another client has.
    """
    path = ctx.settings.config_dir / "clients.yaml"
    specs = load_clients(path, calendars=ctx.calendars.keys())
    if not specs:
        return 0
    for attempt in (1, 2):  # two processes starting at once: the loser reads the winner's
        try:
            with transaction(ctx.sessions) as session:
                changes = ctx.clients.apply(session, specs, file=str(path))
            break
        except IntegrityError:
            if attempt == 2:
                raise
    if changes:
        log.info("clients_synced", changes=changes)
    return changes
