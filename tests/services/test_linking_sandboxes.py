"""Link suggestions across the vendor sandboxes: Autotask PSA companies linked to hub
clients, and the RMMs' records — Datto RMM sites (Autotask hints), NinjaOne organizations
(a custom field holding the Autotask company id) and N-central customers. The right
links are proposed, the traps are not suggested, and the PSA side works too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from connectors.autotask.sandbox import SandboxServer as AutotaskServer
from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer as DattoServer
from connectors.ncentral.sandbox import SandboxServer as NcentralServer
from connectors.ninjaone.sandbox import SandboxServer as NinjaServer
from hub.core.linking.proposals import THRESHOLD, Verdict
from hub.services.directory import ClientDirectory
from hub.services.linking import suggestions
from hub.services.sources import Source, Sources, SourceSpec
from hub.store.db import make_engine, make_sessionmaker, transaction
from hub.store.migrate import upgrade

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    """The four sandboxes, running on 127.0.0.1."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(cls()) for name, cls in (
            ("at-prod", AutotaskServer), ("datto", DattoServer), ("ninja", NinjaServer),
            ("ncentral", NcentralServer))}


def test_the_sandboxes_data_gets_the_right_links_and_no_wrong_one(
        sessions: sessionmaker[Session], servers: dict[str, Any]) -> None:
    """Hints score 1.0 (the Autotask source is configured, so its vendor is known), names
    0.9; the ambiguous, weak and unrelated records are not suggested."""
    autotask = servers["at-prod"].sandbox.store
    companies = {name: str(autotask.create_company(name)["id"]) for name in (
        "Acme Manufacturing Ltd", "Globex Corporation", "Initech, Inc.",
        "Umbrella Corporation", "Stark Industries")}
    directory = ClientDirectory(clock=lambda: NOW)
    with transaction(sessions) as s:
        for key, name, company in (
                ("acme", "Acme Manufacturing", "Acme Manufacturing Ltd"),
                ("globex", "Globex Corporation", "Globex Corporation"),
                ("initech", "Initech", "Initech, Inc."),
                ("umbrella", "Umbrella Corporation", "Umbrella Corporation"),
                ("acme-logistics", "Acme Logistics", None), ("stark", "Stark Industries", None)):
            directory.save(s, key, name=name, by="user:alice")
            if company:
                directory.link(s, key, "at-prod", "company", companies[company], name=company,
                               by="user:alice")
    datto = servers["datto"].sandbox.store
    expected: dict[str, tuple[str, str | None]] = {}  # record name → (verdict, client)
    for name, hint, verdict, client in (
            ("Acme Manufacturing - HQ", "Acme Manufacturing Ltd", "suggested", "acme"),
            ("Server Room", "Initech, Inc.", "suggested", "initech"),
            ("Acme", None, "ambiguous", None),
            ("Wayne Enterprises", None, "none", None)):
        datto.create_site(name, autotask_company_id=companies[hint] if hint else None,
                          autotask_company_name=hint)
        expected[name] = (verdict, client)
    ninja = servers["ninja"].sandbox.store
    for name, hint, verdict, client in (
            ("Globex Corp.", None, "suggested", "globex"),
            ("IT", "Initech, Inc.", "suggested", "initech"),
            ("Umbrella Health", None, "weak", None)):
        ninja.create_organization(name, fields={"autotaskId": companies[hint]} if hint else {})
        expected[name] = (verdict, client)
    ncentral = servers["ncentral"].sandbox.store
    for name, verdict, client in (("Initech Inc.", "suggested", "initech"),
                                  ("Acme Logistics LLC", "suggested", "acme-logistics"),
                                  ("Globe Express", "none", None)):
        ncentral.create_customer(name)
        expected[name] = (verdict, client)
    overrides = {"ninja": {"psa_company_field": "autotaskId", "psa_vendor": "autotask"}}
    sources = Sources({
        name: Source(name, SourceSpec(vendor=vendor), build_connector(
            vendor, name, servers[name].connector_config(**overrides.get(name, {}))))
        for name, vendor in (("at-prod", "autotask"), ("datto", "datto-rmm"),
                             ("ninja", "ninjaone"), ("ncentral", "ncentral"))})
    try:
        with sessions() as s:
            rmm = suggestions(s, directory, sources, kind="rmm")
            psa = suggestions(s, directory, sources, kind="psa")
    finally:
        sources.close()
    assert [x.error for x in rmm.listings] == [None, None, None]
    got = {p.record.name: p for p in rmm.proposals if p.record.name in expected}
    assert set(got) == set(expected)
    for name, (verdict, client) in expected.items():
        proposal = got[name]
        assert proposal.verdict == verdict, (name, proposal)
        if verdict == "suggested":
            assert proposal.best is not None and proposal.best.client == client, name
            assert proposal.confidence >= THRESHOLD
    assert got["Server Room"].confidence == 1.0 and got["IT"].confidence == 1.0
    wrong = [p for p in rmm.proposals if p.verdict is Verdict.SUGGESTED
             and p.record.name not in expected]
    assert wrong == []  # records the sandboxes made themselves are not suggested either
    # the PSA side: the one Autotask company no client is linked to yet
    stark = [p for p in psa.proposals if p.record.name == "Stark Industries"]
    assert [(p.verdict, p.best.client if p.best else None) for p in stark] == [
        (Verdict.SUGGESTED, "stark")]
    assert psa.already_linked == 4
