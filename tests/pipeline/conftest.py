"""Fixtures for pipeline tests: a migrated database, test mappings, a runtime on a stub broker."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.settings import Settings
from hub.store.migrate import upgrade
from tests.pipeline.fakes import FakePSA, sources_with

REPO = Path(__file__).resolve().parents[2]

MAPPINGS = """\
rules:
  - id: leaver-starts-offboarding
    on: ticket.created
    from: [fakepsa, webhook]
    if:
      ticket.type: Leaver
    launch:
      playbook: user-offboarding
      inputs:
        leaver_name: "{{ ticket.contact.name }}"
  - id: backup-verifies
    on: alert.resolved
    if: {alert.category: backup}
    tick:
      playbook: [client-onboarding, monthly-maintenance]
      step: verify-backups
      evidence: "{{ source }} alert {{ alert.id }}: {{ alert.message }}"
  - id: closed-ticket-comments
    on: ticket.closed
    from: [fakepsa]
    comment:
      text: "Ticket {{ subject.id }} was closed in the PSA"
  - id: withdrawn-cancels
    on: ticket.updated
    from: [fakepsa]
    if: {ticket.status: Withdrawn}
    cancel:
      playbook: [user-offboarding]
      reason: "leaver request withdrawn"
"""

# the vendor records the tests' events name, linked to hub clients
CLIENTS = """\
clients:
  ACME:
    name: Acme Corp
    tags: [managed-services]
    links:
      - {source: psa, type: company, id: ACME}
      - {source: webhook, type: company, id: ACME}
      - {source: tools, type: company, id: ACME}
      - {source: rmm, type: site, id: site-acme-1}
"""


class Clock:
    """A controllable clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub_settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings on a fresh database with the shipped playbooks/config and test mappings."""
    for name in ("playbooks", "config"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "config" / "connectors.yaml").unlink(missing_ok=True)
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "rules.yaml").write_text(MAPPINGS)
    (tmp_path / "config" / "clients.yaml").write_text(CLIENTS)
    return Settings(database_url=db_url, data_dir=tmp_path / "data",
                    playbooks_dir=tmp_path / "playbooks", config_dir=tmp_path / "config",
                    mappings_dir=mappings, public_url="http://hub.test", redis_url=None)


@pytest.fixture
def psa() -> FakePSA:
    return FakePSA("psa")


@pytest.fixture
def runtime(hub_settings: Settings, psa: FakePSA, clock: Clock) -> Iterator[Runtime]:
    """A runtime on an in-process stub broker with the fake PSA as the only source."""
    rt = build_runtime(hub_settings, clock=clock, sources=sources_with(psa))
    broker = rt.broker
    assert isinstance(broker, StubBroker)
    upgrade(rt.ctx.engine)
    sync_clients(rt.ctx)
    # test speed: retry quickly instead of the production backoff
    for name in broker.get_declared_actors():
        actor = broker.get_actor(name)
        actor.options["min_backoff"] = 5
        actor.options["max_backoff"] = 20
    yield rt
    rt.stop()


@pytest.fixture
def worker(runtime: Runtime) -> Iterator[Worker]:
    """An in-process dramatiq worker on the runtime's stub broker."""
    w = Worker(runtime.broker, worker_timeout=50, worker_threads=2)
    w.start()
    yield w
    w.stop()


def drain(rt: Runtime, worker: Worker, *, fail_fast: bool = True) -> None:
    """Wait until every queue (and its delay queue) is empty and the worker idle."""
    broker = rt.broker
    assert isinstance(broker, StubBroker)
    for _ in range(5):
        for queue in list(broker.queues):
            broker.join(queue, fail_fast=fail_fast, timeout=90_000)  # generous: a loaded CI box
        worker.join()
