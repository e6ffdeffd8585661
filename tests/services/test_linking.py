"""The linking service: which sources are listed, a failing source reported beside the
others, provisional links still proposed, and PSA hints compared by the source's vendor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Linkable, TransientError
from hub.errors import NotFound
from hub.services.directory import ClientDirectory
from hub.services.linking import check, list_records, suggestions, suggestions_dict
from hub.services.sources import Source, Sources, SourceSpec
from hub.store.db import make_engine, make_sessionmaker, transaction
from hub.store.migrate import upgrade

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class ListingRMM:
    """A connector with only the Directory capability (and what every connector has)."""

    manifest = SimpleNamespace(kind="rmm")

    def __init__(self, items: list[Linkable] | None = None, *, fail: bool = False) -> None:
        self.items = items or []
        self.fail = fail
        self.calls = 0

    def linkables(self) -> list[Linkable]:
        self.calls += 1
        if self.fail:
            raise TransientError("HTTP 503", source="ninja", status=503)
        return list(self.items)

    def close(self) -> None:
        """Nothing to release."""


class PlainPSA:
    """A connector that cannot list its records."""

    manifest = SimpleNamespace(kind="psa")

    def close(self) -> None:
        """Nothing to release."""


def sources(**connectors: tuple[str, Any]) -> Sources:
    """Sources named by keyword: name=(vendor, connector)."""
    return Sources({name: Source(name, SourceSpec(vendor=vendor), conn)  # type: ignore[arg-type]
                    for name, (vendor, conn) in connectors.items()})


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def clients(sessions: sessionmaker[Session]) -> ClientDirectory:
    """acme (ConnectWise company 19300, Autotask company 19300) and globex."""
    directory = ClientDirectory(clock=lambda: NOW)
    with transaction(sessions) as s:
        directory.save(s, "acme", name="Acme Corp", by="user:alice")
        directory.link(s, "acme", "cw-prod", "company", "19300", name="Acme Corp", by="user:a")
        directory.save(s, "globex", name="Globex", by="user:alice")
        directory.link(s, "globex", "at-prod", "company", "555", name="Globex", by="user:a")
    return directory


def test_only_directory_sources_are_listed_and_a_failure_is_reported(
        sessions: sessionmaker[Session], clients: ClientDirectory) -> None:
    """The PSA cannot list records: skipped; NinjaOne fails: reported; Datto counts."""
    datto = ListingRMM([Linkable("site", "S-1", "Globex")])
    srcs = sources(psa=("connectwise", PlainPSA()), ninja=("ninjaone", ListingRMM(fail=True)),
                   datto=("datto-rmm", datto))
    listings = list_records(srcs)
    assert [(x.source, x.error) for x in listings] == [
        ("ninja", "TransientError: HTTP 503"), ("datto", None)]
    with sessions() as s:
        report = suggestions_dict(suggestions(s, clients, srcs))
    assert report["errors"] == [{"source": "ninja", "error": "TransientError: HTTP 503"}]
    assert [(p["vendor_id"], p["client"], p["verdict"]) for p in report["proposals"]] == [
        ("S-1", "globex", "suggested")]
    with pytest.raises(NotFound, match="cannot list its records"):
        list_records(srcs, only="psa")
    with pytest.raises(NotFound, match="no configured source is named 'nowhere'"):
        list_records(srcs, only="nowhere")


def test_a_hint_counts_only_for_links_to_a_source_of_the_hint_s_vendor(
        sessions: sessionmaker[Session], clients: ClientDirectory) -> None:
    """Autotask company 19300 is not ConnectWise company 19300 (acme's); 555 is Globex's
    Autotask company, and at-prod is configured as an Autotask source."""
    datto = ListingRMM([
        Linkable("site", "S-1", "Server room", "autotask", "19300"),
        Linkable("site", "S-2", "Server room", "autotask", "555"),
    ])
    srcs = sources(datto=("datto-rmm", datto), **{"cw-prod": ("connectwise", PlainPSA()),
                                                  "at-prod": ("autotask", PlainPSA())})
    with sessions() as s:
        proposals = {p.record.id: p for p in suggestions(s, clients, srcs).proposals}
    assert proposals["S-1"].best is None
    assert proposals["S-2"].best is not None and proposals["S-2"].best.client == "globex"
    assert proposals["S-2"].confidence == 1.0


def test_records_linked_to_a_provisional_client_are_still_proposed(
        sessions: sessionmaker[Session], clients: ClientDirectory) -> None:
    """A provisional client is never a candidate; its record is proposed for a real one."""
    with transaction(sessions) as s:
        clients.ensure(s, "datto-site-s-1", "Acme Corp", provisional=True)
        clients.link(s, "datto-site-s-1", "datto", "site", "S-1", by="provisional")
        clients.link(s, "acme", "datto", "site", "S-9", name="Acme HQ", by="user:alice")
    datto = ListingRMM([Linkable("site", "S-1", "Acme Corp"), Linkable("site", "S-9", "Acme")])
    with sessions() as s:
        report = suggestions(s, clients, sources(datto=("datto-rmm", datto)))
    assert [(p.record.id, p.best.client if p.best else None) for p in report.proposals] == [
        ("S-1", "acme")]
    assert report.provisional == {("datto", "site", "S-1"): "datto-site-s-1"}
    assert report.already_linked == 1


def test_check_names_the_sources_it_could_not_check(
        sessions: sessionmaker[Session], clients: ClientDirectory) -> None:
    """Links of sources that are not configured or failed are counted as unchecked."""
    with transaction(sessions) as s:
        clients.link(s, "acme", "datto", "site", "S-1", name="Acme HQ", by="user:alice")
    listed = ListingRMM([Linkable("site", "S-1", "Acme HQ")])
    with sessions() as s:
        ok = check(s, clients, sources(datto=("datto-rmm", listed)))
        failed = check(s, clients, sources(datto=("datto-rmm", ListingRMM(fail=True))))
        only = check(s, clients, sources(datto=("datto-rmm", listed)), only="datto")
    assert (ok.drift, ok.checked, ok.unchecked_sources) == ([], 1, ["at-prod", "cw-prod"])
    assert failed.drift == [] and failed.checked == 0
    assert failed.unchecked_sources == ["at-prod", "cw-prod", "datto"]
    assert only.unchecked_sources == []


def test_kind_chooses_rmm_or_psa_sources(
        sessions: sessionmaker[Session], clients: ClientDirectory) -> None:
    """A PSA that lists its companies is left out with kind=rmm, and alone with kind=psa."""
    class ListingPSA(ListingRMM):
        manifest = SimpleNamespace(kind="psa")

    psa = ListingPSA([Linkable("company", "77", "Globex")])
    rmm = ListingRMM([Linkable("site", "S-1", "Globex")])
    srcs = sources(**{"at-prod": ("autotask", psa), "datto": ("datto-rmm", rmm)})
    assert [x.source for x in list_records(srcs, kind="rmm")] == ["datto"]
    with sessions() as s:
        both = suggestions(s, clients, srcs)
        only_psa = suggestions(s, clients, srcs, kind="psa")
    assert sorted(p.record.id for p in both.proposals) == ["77", "S-1"]
    assert [(p.record.id, p.best.client if p.best else None) for p in only_psa.proposals] == [
        ("77", "globex")]
