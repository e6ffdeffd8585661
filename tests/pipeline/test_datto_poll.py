"""Datto RMM polled through the hub (in-process runtime): the reconciliation poll ticks
the step a lost webhook would have, and overlapping poll windows have no second effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq import Worker
from sqlalchemy import func, select

from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer
from hub.runtime.process import Runtime
from hub.services.polling import poll_once
from hub.services.sources import Source, SourceSpec
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.pipeline.conftest import drain
from tests.pipeline.test_clients import launch_maintenance, step


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    """The Datto RMM sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def test_a_polled_backup_resolution_ticks_the_linked_client_s_run_once(
        runtime: Runtime, worker: Worker, rmm: SandboxServer) -> None:
    """No webhook at all: the resolved-alerts poll finds the backup alert, the site
    resolves to ACME, verify-backups is ticked; a second poll re-reads the lookback and
    stores nothing new."""
    # Given ACME's maintenance run and a Datto site linked to ACME
    store = rmm.sandbox.store
    site = store.create_site("Acme HQ")
    store.create_device(site["uid"], "ACME-FS01")
    connector = build_connector("datto-rmm", "datto", rmm.connector_config())
    runtime.sources.items["datto"] = Source("datto", SourceSpec(vendor="datto-rmm"), connector)
    run_id = launch_maintenance(runtime)
    with transaction(runtime.ctx.sessions) as s:
        runtime.ctx.clients.link(s, "ACME", "datto", "site", site["uid"], by="user:admin")
    drain(runtime, worker)
    # When a backup alert is raised and resolved in Datto, and the hub polls twice
    alert = store.raise_alert(site["uid"], diagnostics="Backup job 'Nightly image' completed")
    store.resolve_alert(alert["alertUid"])
    first = poll_once(runtime.ctx, runtime.sources, "datto", "alerts_resolved")
    runtime.dispatch.events(first)
    drain(runtime, worker)
    second = poll_once(runtime.ctx, runtime.sources, "datto", "alerts_resolved")
    # Then the step is done with Datto's alert as evidence, from one inbox event
    done = step(runtime, run_id, "verify-backups")
    assert done.status.value == "done"
    assert done.evidence == (f"datto alert {alert['alertUid']}: "
                             "Backup job 'Nightly image' completed")
    assert len(first) == 1 and second == []
    with runtime.ctx.sessions() as s:
        assert s.execute(select(func.count()).select_from(InboxEvent)).scalar_one() == 1
        row = s.execute(select(InboxEvent)).scalar_one()
        assert (row.status, row.client_type, row.hub_client) == ("done", "site", "ACME")
