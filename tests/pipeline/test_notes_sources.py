"""No notes for sources that cannot take them (issue 14, item 3): a run whose ticket source
is not a TicketWriter queues no outbox notes, so none goes dead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.core.checklists.engine import TicketRef
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.services.notes import ticket_writers
from hub.settings import Settings
from hub.store.db import transaction
from hub.store.migrate import upgrade
from hub.store.models import OutboxNote
from tests.pipeline.conftest import Clock
from tests.pipeline.fakes import FakePSA, sources_with

CONNECTORS = """\
sources:
  tools:
    vendor: webhook
    config: {secret: "${TOOLS_SECRET}"}
  cw-prod:
    vendor: connectwise
    config: {site: na.myconnectwise.net}
"""


def test_ticket_writers_reads_capabilities_from_connectors_yaml(tmp_path: Path) -> None:
    """The generic webhook cannot write to tickets; ConnectWise can; unknown names may."""
    (tmp_path / "connectors.yaml").write_text(CONNECTORS)

    can_write = ticket_writers(tmp_path)

    assert (can_write("tools"), can_write("cw-prod"), can_write("psa")) == (False, True, True)


def test_ticket_writers_without_a_file_allows_every_source(tmp_path: Path) -> None:
    """No connectors.yaml (tests, injected sources): nothing is filtered."""
    assert ticket_writers(tmp_path)("anything") is True


@pytest.fixture
def runtime_with_tools(hub_settings: Settings, psa: FakePSA,
                       clock: Clock) -> Iterator[Runtime]:
    """A runtime whose connectors.yaml declares `tools` as a generic webhook source."""
    (hub_settings.config_dir / "connectors.yaml").write_text(CONNECTORS)
    rt = build_runtime(hub_settings, clock=clock, sources=sources_with(psa))
    upgrade(rt.ctx.engine)
    sync_clients(rt.ctx)
    yield rt
    rt.stop()


def launch_from(rt: Runtime, source: str, ticket: str) -> int:
    """Launch the offboarding playbook for a ticket of ``source``."""
    with transaction(rt.ctx.sessions) as session:
        run = rt.ctx.runs.launch(session, "user-offboarding", client="ACME",
                                 inputs={"leaver_name": "Sam Lee"}, by="rule:test",
                                 ticket=TicketRef(source, ticket))
        return run.id


def test_run_from_a_source_that_cannot_write_queues_no_notes(
        runtime_with_tools: Runtime) -> None:
    """A run whose ticket is in the webhook source gets no notes; a PSA ticket's run does."""
    # Given one run from the generic webhook source and one from the PSA
    from_tools = launch_from(runtime_with_tools, "tools", "T-1")
    from_psa = launch_from(runtime_with_tools, "psa", "T-2")

    # When a step of each completes
    for run_id in (from_tools, from_psa):
        with transaction(runtime_with_tools.ctx.sessions) as session:
            runtime_with_tools.ctx.runs.complete(session, run_id, "confirm-leaver",
                                                 by="user:alice")

    # Then only the PSA run has notes (launched, step done)
    with runtime_with_tools.ctx.sessions() as session:
        notes = session.execute(select(OutboxNote.run_id, OutboxNote.kind)).all()
    assert {run_id for run_id, _ in notes} == {from_psa}
    assert sorted(kind for _, kind in notes) == ["launched", "step_done"]
