"""A source whose credentials the vendor refuses stops calling it (issue 8, AuthFailed):
marked failing with one error log, polls and notes hold (no request, no note lost) until
the credentials change or an admin retries, and the first success logs the recovery."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from dramatiq import Worker
from sqlalchemy import select
from structlog.testing import capture_logs

from connectors.base import AuthFailed, build_connector
from connectors.connectwise.sandbox import SandboxServer
from hub.api.metrics import SourceGauges
from hub.core.states import NoteStatus, SourceState
from hub.runtime.process import Runtime
from hub.services import source_health, writeback
from hub.services.polling import poll_once
from hub.services.sources import Source, Sources, SourceSpec
from hub.store.models import OutboxNote, SourceHealth
from tests.pipeline.conftest import drain
from tests.pipeline.fakes import FakePSA
from tests.pipeline.test_inprocess import leaver_event, post
from tests.pipeline.test_notes_sources import launch_from


class _Counting(httpx.HTTPTransport):
    """Counts the requests that reach the vendor."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


@pytest.fixture
def cw() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def _cw_source(cw: SandboxServer, transport: _Counting, *, valid: bool) -> Sources:
    connector = build_connector("connectwise", "cw", cw.connector_config(valid_credentials=valid),
                                transport=transport)
    return Sources({"cw": Source("cw", SourceSpec(vendor="connectwise"), connector,
                                 fingerprint="good-keys" if valid else "bad-keys")})


def _events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == name]


def test_refused_credentials_hold_the_polls_until_they_change(runtime: Runtime,
                                                              cw: SandboxServer) -> None:
    """The poll that meets a 401 marks the source (one error); the next polls send
    nothing; new credentials are tried at once, and their success clears the state."""
    transport = _Counting()
    bad = _cw_source(cw, transport, valid=False)
    with capture_logs() as logs:
        # Given a vendor that refuses the configured keys
        with pytest.raises(AuthFailed):
            poll_once(runtime.ctx, bad, "cw", "tickets")
        sent = transport.requests
        # When the scheduler polls again, twice
        assert poll_once(runtime.ctx, bad, "cw", "tickets") == []
        assert poll_once(runtime.ctx, bad, "cw", "tickets") == []
        # Then no request reached the vendor, and the failure was logged once, at error
        assert transport.requests == sent
        [failed] = _events(logs, "source_auth_failed")
        assert failed["log_level"] == "error" and failed["source"] == "cw"
        with runtime.ctx.sessions() as session:
            state = source_health.health(session, "cw", "bad-keys")
        assert state.state is SourceState.AUTH_FAILED and state.holding
        # When the admin fixes the keys (a new config fingerprint)
        good = _cw_source(cw, _Counting(), valid=True)
        poll_once(runtime.ctx, good, "cw", "tickets")
    # Then the poll ran, the state is gone, and the recovery was logged once
    [recovered] = _events(logs, "source_auth_recovered")
    assert recovered["log_level"] == "warning"
    with runtime.ctx.sessions() as session:
        assert session.execute(select(SourceHealth)).scalars().all() == []
    bad.close()
    good.close()


def test_notes_wait_for_refused_credentials_and_go_out_after_a_retry(
        runtime: Runtime, psa: FakePSA) -> None:
    """A note meeting a 401 stays pending (never dead); later deliveries hold without
    calling the PSA; after ``retry`` the next delivery posts it and clears the state."""
    run_id = launch_from(runtime, "psa", "T-1")
    with runtime.ctx.sessions() as session:
        [note_id] = session.execute(select(OutboxNote.id)
                                    .where(OutboxNote.run_id == run_id)).scalars()
    psa.fail_next = ["auth"]
    with capture_logs() as logs:
        # Given the PSA refuses our keys on the first delivery
        with pytest.raises(AuthFailed):
            writeback.deliver(runtime.ctx, runtime.sources, note_id)
        # When the requeue job sends it again
        calls = psa.post_calls
        held = writeback.deliver(runtime.ctx, runtime.sources, note_id)
        # Then it is held: no call to the PSA, still pending, not dead
        assert held.outcome == "held" and psa.post_calls == calls
        with runtime.ctx.sessions() as session:
            assert session.get(OutboxNote, note_id).status == NoteStatus.PENDING
        # When an admin retries (the keys were fixed at the PSA's end)
        assert source_health.retry(runtime.ctx.sessions, "psa", by="admin") is True
        sent = writeback.deliver(runtime.ctx, runtime.sources, note_id)
    # Then the note went out once and the source is healthy again
    assert sent.outcome in ("sent", "found")
    assert len(psa.all_notes()) == 1
    assert len(_events(logs, "source_auth_failed")) == 1
    assert len(_events(logs, "source_auth_recovered")) == 1
    assert source_health.retry(runtime.ctx.sessions, "psa", by="admin") is False


def test_a_retry_that_is_refused_again_is_logged_again(runtime: Runtime, psa: FakePSA) -> None:
    """An admin's retry with keys that still fail marks the source again (a new error)."""
    run_id = launch_from(runtime, "psa", "T-2")
    with runtime.ctx.sessions() as session:
        [note_id] = session.execute(select(OutboxNote.id)
                                    .where(OutboxNote.run_id == run_id)).scalars()
    psa.fail_next = ["auth", "auth"]
    with capture_logs() as logs:
        with pytest.raises(AuthFailed):
            writeback.deliver(runtime.ctx, runtime.sources, note_id)
        source_health.retry(runtime.ctx.sessions, "psa", by="admin")
        with pytest.raises(AuthFailed):
            writeback.deliver(runtime.ctx, runtime.sources, note_id)
        assert writeback.deliver(runtime.ctx, runtime.sources, note_id).outcome == "held"
    assert len(_events(logs, "source_auth_failed")) == 2
    assert psa.all_notes() == []


def test_refused_credentials_are_a_metrics_gauge(runtime: Runtime, psa: FakePSA) -> None:
    """/metrics has ``msphub_connector_auth_failed`` 1 while a source's jobs wait, else 0."""
    gauges = SourceGauges(runtime.sources, runtime.ctx)

    def refused() -> dict[str, float]:
        families = {f.name: f for f in gauges.collect()}
        return {s.labels["source"]: s.value
                for s in families["msphub_connector_auth_failed"].samples}

    assert refused() == {"psa": 0}
    source_health.auth_failed(runtime.ctx.sessions, "psa", "", "401", runtime.ctx.clock())
    assert refused() == {"psa": 1}
    source_health.retry(runtime.ctx.sessions, "psa", by="admin")
    assert refused() == {"psa": 0}


def test_through_the_worker_a_refused_note_waits_and_is_never_dead(
        runtime: Runtime, worker: Worker, psa: FakePSA) -> None:
    """The delivery actor meeting a 401 neither retries nor parks the note as dead: it
    waits, pending, and the requeue sweep holds it without calling the PSA."""
    psa.fail_next = ["auth"]
    post(runtime, leaver_event())
    drain(runtime, worker)
    calls = psa.post_calls
    with runtime.ctx.sessions() as session:
        notes = session.execute(select(OutboxNote)).scalars().all()
    assert notes and all(n.status == NoteStatus.PENDING for n in notes)
    assert calls == 1 and psa.all_notes() == []
    # the requeue sweep sends them again: held, no call to the PSA
    runtime.dispatch.notes([n.id for n in notes])
    drain(runtime, worker)
    assert psa.post_calls == calls
