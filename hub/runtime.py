"""The per-process runtime the actors use: context, live rules, connector instances, broker."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from connectors.base import load_registry
from hub.context import HubContext
from hub.events import KNOWN_VENDORS
from hub.logging import bind_context
from hub.mapping.reloader import RuleHolder
from hub.notes import OutboxSink
from hub.settings import Settings
from hub.sources import Sources, configured_sources, redis_client_for

log = structlog.get_logger()


class ContextMiddleware(Middleware):
    """Binds ``message_id``, the actor and its first argument to the log context."""

    _local = threading.local()

    def before_process_message(self, broker: Any, message: Any) -> None:
        cm = bind_context(message_id=message.message_id, actor=message.actor_name,
                          item_id=message.args[0] if message.args else None)
        cm.__enter__()
        self._local.cm = cm

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        cm = getattr(self._local, "cm", None)
        if cm is not None:
            cm.__exit__(None, None, None)
            self._local.cm = None
        if exception is not None and message.failed:
            _on_dead(message.actor_name, message.args, exception)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)


def _on_dead(actor: str, args: tuple[Any, ...], exc: BaseException) -> None:
    """The last attempt failed: park the item in the dead-letter list."""
    rt = Runtime.current_or_none()
    if rt is None or not args:
        return
    from hub.deadletters import mark_dead

    mark_dead(rt.ctx, actor, int(args[0]), f"{type(exc).__name__}: {exc}")


def make_broker(redis_url: str | None, namespace: str = "msphub") -> dramatiq.Broker:
    """A Redis broker when configured, else an in-process stub broker."""
    broker: dramatiq.Broker
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    # after_* hooks run in reverse order: placed before Retries, ours runs after it and
    # sees ``message.failed`` once the last attempt has been given up.
    broker.add_middleware(ContextMiddleware(), before=Retries)
    return broker


@dataclass
class Runtime:
    """What actors need, built once per process by the entry point."""

    ctx: HubContext
    rules: RuleHolder
    sources: Sources
    broker: dramatiq.Broker
    limiter_backend: Any = None  # dramatiq rate-limiter backend: Redis, or in-memory
    namespace: str = "msphub"
    _schedules: list[Any] = field(default_factory=list)
    _last_check: float = field(default=0.0)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _current: Runtime | None = None  # class-level: the process's runtime

    @classmethod
    def start(cls, settings: Settings, *, broker: dramatiq.Broker | None = None,
              ctx: HubContext | None = None, sources: Sources | None = None) -> Runtime:
        """Build the runtime from settings and bind the actors to its broker.

        Raises:
            ConfigError: a playbook, mapping, team, calendar or connector file is invalid.
        """
        ctx = ctx or HubContext.build(settings, notes=OutboxSink(settings.public_url))
        redis_client = redis_client_for(settings.redis_url)
        if sources is None:
            sources = configured_sources(settings, redis_client)
        # `from:` may name any registered vendor (installed or not yet configured) or
        # a configured instance; anything else is a typo worth refusing
        names = {s.name for s in sources} | {s.vendor for s in sources} | set(load_registry())
        names |= KNOWN_VENDORS
        rules = RuleHolder.load(settings.mappings_dir, ctx.playbooks,
                                sources=names or None)
        from hub.schedules import check as check_schedules

        schedules = check_schedules(ctx)  # a broken file stops start-up with file and line
        broker = broker or make_broker(settings.redis_url, settings.redis_namespace)
        from hub import actors

        actors.bind(broker)
        if redis_client is not None:
            from dramatiq.rate_limits.backends import RedisBackend

            backend: Any = RedisBackend(client=redis_client)
        else:
            from dramatiq.rate_limits.backends import StubBackend

            backend = StubBackend()  # type: ignore[no-untyped-call]
        rt = cls(ctx=ctx, rules=rules, sources=sources, broker=broker, limiter_backend=backend,
                 namespace=settings.redis_namespace, _schedules=schedules)

        def dispatch(note_ids: list[int]) -> None:
            for note_id in note_ids:
                actors.deliver_outbox_item.send(note_id)

        ctx.dispatch_notes = dispatch
        Runtime._current = rt
        return rt

    @classmethod
    def current(cls) -> Runtime:
        """The process's runtime (actors call this)."""
        if cls._current is None:
            raise RuntimeError("msphub runtime not started in this process")
        return cls._current

    @classmethod
    def current_or_none(cls) -> Runtime | None:
        return cls._current

    def live_rules(self) -> Any:
        """The current rules, reloading changed files at most once a second."""
        now = time.monotonic()
        if now - self._last_check > 1.0:
            with self._lock:
                if now - self._last_check > 1.0:
                    self._last_check = now
                    self.rules.maybe_reload()
        return self.rules.rules

    def current_schedules(self) -> list[Any]:
        """config/schedules.yaml as it is now; a broken edit keeps the last good list."""
        from hub.errors import ConfigError
        from hub.schedules import check

        try:
            self._schedules = check(self.ctx)
        except ConfigError as exc:
            log.error("schedules_invalid", file=exc.file, line=exc.line, reason=exc.message)
        return self._schedules

    def poll_lock(self, source: str, stream: str) -> Any:
        """A limit-1 lock so polls of one (source, stream) never overlap, across workers."""
        from dramatiq.rate_limits import ConcurrentRateLimiter

        return ConcurrentRateLimiter(  # type: ignore[no-untyped-call]
            self.limiter_backend, f"{self.namespace}:poll:{source}:{stream}",
                                     limit=1, ttl=15 * 60 * 1000)

    def stop(self) -> None:
        """Close connectors and forget this runtime."""
        self.sources.close()
        if Runtime._current is self:
            Runtime._current = None
