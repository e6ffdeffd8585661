"""Prometheus metrics of one API app: its own registry, so apps (and tests) never share counts."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hub.core.states import InboxStatus, RunStatus, StepStatus
from hub.services import source_health
from hub.services.context import HubContext
from hub.services.sources import Sources
from hub.store.models import InboxEvent, Run, RunStep

log = structlog.get_logger("hub.api")

UNMATCHED_ROUTE = "<unmatched>"  # one label for every unknown path, so scanners can't add series


def count_overdue_steps(ctx: HubContext) -> int:
    """Unfinished steps of active runs past their due time (one indexed COUNT)."""
    waiting = (StepStatus.OPEN.value, StepStatus.LOCKED.value)
    stmt = (select(func.count()).select_from(RunStep).join(Run, Run.id == RunStep.run_id)
            .where(Run.status == RunStatus.ACTIVE.value, RunStep.status.in_(waiting),
                   RunStep.due_at < ctx.clock()))
    with ctx.sessions() as session:
        return int(session.execute(stmt).scalar_one())


class RunGauges(Collector):
    """Active runs and overdue steps, computed from the database at scrape time."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    def describe(self) -> list[Metric]:
        """The metric names, without values: registering must not query the database."""
        return [GaugeMetricFamily("msphub_runs_active", "Runs in progress."),
                GaugeMetricFamily("msphub_steps_overdue",
                                  "Unfinished steps of active runs past their due time."),
                GaugeMetricFamily("msphub_database_up", "1 when the last scrape reached the DB.")]

    def collect(self) -> Iterator[Metric]:
        """Query the database now; on failure report ``msphub_database_up 0`` only."""
        up = GaugeMetricFamily("msphub_database_up", "1 when the last scrape reached the DB.")
        try:
            with self._ctx.sessions() as session:
                active = self._ctx.runs.count_active(session)
            overdue = count_overdue_steps(self._ctx)
        except SQLAlchemyError as exc:
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("msphub_runs_active", "Runs in progress.", value=active)
        yield GaugeMetricFamily("msphub_steps_overdue",
                                "Unfinished steps of active runs past their due time.",
                                value=overdue)


_INBOX = ("msphub_inbox_events", "Inbox events by outcome (pending, done, ignored, failed, "
          "dead): failed ones wait for an admin (msphub events list --failed).")


def count_inbox(ctx: HubContext) -> dict[str, int]:
    """Inbox events by status, every status present (0 when none): one GROUP BY."""
    with ctx.sessions() as session:
        found = {str(status): int(n) for status, n in session.execute(
            select(InboxEvent.status, func.count()).group_by(InboxEvent.status))}
    return {s.value: found.get(s.value, 0) for s in InboxStatus}


class InboxGauges(Collector):
    """Inbox events by outcome, computed from the database at scrape time (so every
    process reports the same numbers, and a failed event shows until it is retried)."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    def describe(self) -> list[Metric]:
        """Names only: registering must not query the database."""
        return [GaugeMetricFamily(*_INBOX, labels=["status"])]

    def collect(self) -> Iterator[Metric]:
        """Count now; nothing when the database is unreachable (``msphub_database_up``
        says so)."""
        try:
            counts = count_inbox(self._ctx)
        except SQLAlchemyError as exc:
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            return
        gauge = GaugeMetricFamily(*_INBOX, labels=["status"])
        for status, n in counts.items():
            gauge.add_metric([status], n)
        yield gauge


_BUDGET = ("msphub_connector_budget_remaining", "Requests left in the current window.")
_PAUSED = ("msphub_connector_paused_seconds",
           "Seconds left of the vendor's Retry-After pause of the source (0: not paused).")
_REFUSED = ("msphub_connector_auth_failed",
            "1 while the vendor refuses the source's credentials (its jobs wait), else 0.")


class SourceGauges(Collector):
    """Remaining request budget and vendor pause per connector instance (shared by every
    worker)."""

    def __init__(self, sources: Sources, ctx: HubContext | None = None) -> None:
        self._sources = sources
        self._ctx = ctx

    def describe(self) -> list[Metric]:
        """Names only: registering must not call Redis."""
        return [GaugeMetricFamily(*_BUDGET, labels=["source"]),
                GaugeMetricFamily(*_PAUSED, labels=["source"]),
                GaugeMetricFamily(*_REFUSED, labels=["source"])]

    def collect(self) -> Iterator[Metric]:
        """Read each source's budget and pause now (Redis calls in Redis mode)."""
        budget = GaugeMetricFamily(*_BUDGET, labels=["source"])
        paused = GaugeMetricFamily(*_PAUSED, labels=["source"])
        for src in self._sources:
            try:
                remaining = src.remaining_budget()
                pause = src.paused_for()
            except Exception:  # a metrics scrape must not fail because Redis hiccupped
                log.warning("metrics_budget_unavailable", source=src.name)
                continue
            if remaining is not None:
                budget.add_metric([src.name], remaining)
            paused.add_metric([src.name], round(pause, 3))
        yield budget
        yield paused
        if self._ctx is None:  # no database: no credentials' state to report
            return
        try:
            with self._ctx.sessions() as session:
                failing = source_health.all_health(session)
        except SQLAlchemyError as exc:
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            return
        refused = GaugeMetricFamily(*_REFUSED, labels=["source"])
        for src in self._sources:
            state = source_health.from_row(src.name, failing.get(src.name), src.fingerprint)
            refused.add_metric([src.name], 1 if state.holding else 0)
        yield refused


class ApiMetrics:
    """The counters and histograms the API updates, and the registry that exposes them."""

    def __init__(self, ctx: HubContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("msphub_http_requests", "HTTP requests handled.",
                                ["method", "route", "status"], registry=self.registry)
        self.duration = Histogram("msphub_http_request_duration_seconds",
                                  "Time to handle an HTTP request.", ["method", "route"],
                                  registry=self.registry)
        self.runs_launched = Counter("msphub_runs_launched",
                                     "Runs launched through this API process.", ["playbook"],
                                     registry=self.registry)
        self.runs_completed = Counter("msphub_runs_completed",
                                      "Runs completed through this API process.", ["playbook"],
                                      registry=self.registry)
        self.runs_cancelled = Counter("msphub_runs_cancelled",
                                      "Runs cancelled through this API process.", ["playbook"],
                                      registry=self.registry)
        self.registry.register(RunGauges(ctx))
        self.registry.register(InboxGauges(ctx))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request under its route template."""
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
