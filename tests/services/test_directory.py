"""The client directory over SQLAlchemy, on SQLite and PostgreSQL: links, resolution,
provisional clients, unlinked records, config/clients.yaml, and the audit facts it leaves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config.clients import ClientSpec, LinkSpec, load_clients
from hub.core.events import ClientRef, Event, EventKind
from hub.errors import ConfigError, NotAllowed, NotFound
from hub.services.directory import ClientDirectory, provisional_key
from hub.services.inbox import add_events
from hub.store import audit
from hub.store.db import make_engine, make_sessionmaker, transaction
from hub.store.migrate import upgrade
from hub.store.models import AuditEntry

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ACME_CW = ClientRef(id="ACME", name="Acme Corp", type="company")
ACME_SITE = ClientRef(id="5f6e7d8c-0000-4000-8000-000000000001", name="Acme HQ", type="site")


@pytest.fixture
def sessions(db_url: str) -> Iterator[object]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def directory(*, provisional: bool = False) -> ClientDirectory:
    return ClientDirectory(clock=lambda: NOW, provisional=provisional)


def test_a_psa_company_and_an_rmm_site_resolve_to_one_client(sessions) -> None:
    """Links (source, type, id) from two tools point at the same hub client."""
    clients = directory()
    # Given acme, linked to a ConnectWise company and a Datto RMM site
    with transaction(sessions) as s:
        clients.save(s, "acme", name="Acme Corp", tags=["managed-services"], by="user:alice")
        clients.link(s, "acme", "cw-prod", "company", "ACME", by="user:alice")
        clients.link(s, "acme", "datto", "site", ACME_SITE.id, by="user:alice")
    # When each vendor record is resolved, then both are acme; an unknown one is nobody
    with sessions() as s:
        assert clients.resolve(s, "cw-prod", ACME_CW).key == "acme"
        assert clients.resolve(s, "datto", ACME_SITE).key == "acme"
        assert clients.resolve(s, "cw-other", ACME_CW) is None  # another PSA instance
        assert clients.resolve(s, "datto", ClientRef(id="ACME", type="company")) is None
        assert clients.resolve(s, "cw-prod", None) is None


def test_a_record_belongs_to_one_client_only(sessions) -> None:
    """Linking a record another real client has is refused, naming that client."""
    clients = directory()
    with transaction(sessions) as s:
        clients.save(s, "acme", by="user:alice")
        clients.save(s, "globex", by="user:alice")
        clients.link(s, "acme", "cw-prod", "company", "ACME", by="user:alice")
    with pytest.raises(NotAllowed, match="already linked to client 'acme'"), \
            transaction(sessions) as s:
        clients.link(s, "globex", "cw-prod", "company", "ACME", by="user:bob")
    with pytest.raises(NotFound, match="'nobody' is not in the directory"), \
            transaction(sessions) as s:
        clients.link(s, "nobody", "cw-prod", "company", "X", by="user:bob")
    # linking the same record to the same client again is a no-op
    with transaction(sessions) as s:
        clients.link(s, "acme", "cw-prod", "company", "ACME", by="user:bob")
        assert len(clients.get(s, "acme").links) == 1


def test_unlinked_records_are_listed_and_never_resolved_without_opt_in(sessions) -> None:
    """Events from an unlinked company are visible per record; nothing is created for them."""
    clients = directory()
    # Given two stored events from an unlinked company and one from a linked one
    with transaction(sessions) as s:
        clients.save(s, "acme", by="user:alice")
        clients.link(s, "acme", "cw-prod", "company", "ACME", by="user:alice")
        add_events(s, [_event("1", "GLOBEX", "Globex"), _event("2", "GLOBEX", "Globex"),
                       _event("3", "ACME", "Acme")], via="webhook", now=NOW)
    with sessions() as s:
        # Then only Globex is unlinked, with its event count
        [item] = clients.unlinked(s)
        assert (item.source, item.type, item.id, item.name, item.events) == (
            "cw-prod", "company", "GLOBEX", "Globex", 2)
        assert clients.resolve(s, "cw-prod", ClientRef(id="GLOBEX")) is None
        assert [c.key for c in clients.all(s)] == ["acme"]


def test_provisional_clients_are_made_only_when_opted_in_and_can_be_claimed(sessions) -> None:
    """With the opt-in an unlinked record gets a flagged client; an admin's link moves it."""
    clients = directory(provisional=True)
    ref = ClientRef(id="19300", name="Globex", type="company")
    # When an unlinked record is resolved with provisional clients on
    with transaction(sessions) as s:
        row = clients.resolve(s, "cw-prod", ref)
        assert row is not None and row.provisional
        assert row.key == provisional_key("cw-prod", ref) == "cw-prod-company-19300"
    # Then it resolves to the same client next time, and the creation is audited
    with transaction(sessions) as s:
        assert clients.resolve(s, "cw-prod", ref).key == "cw-prod-company-19300"
        facts = [e.action for e in s.query(AuditEntry).order_by(AuditEntry.id)]
        assert facts == ["client_linked"]
        assert [c.key for c in clients.all(s, include_provisional=False)] == []
    # When an admin links the record to the real client, it moves there
    with transaction(sessions) as s:
        clients.save(s, "globex", name="Globex Inc", by="user:alice")
        clients.link(s, "globex", "cw-prod", "company", "19300", by="user:alice")
    with sessions() as s:
        assert clients.resolve(s, "cw-prod", ref).key == "globex"
        assert audit.verify(s).ok


def test_unlink_and_audit_chain(sessions) -> None:
    """Unlinking is refused for an unknown record; every change is one chained audit fact."""
    clients = directory()
    with transaction(sessions) as s:
        clients.save(s, "acme", name="Acme", calendar="uk", by="user:alice")
        clients.link(s, "acme", "cw-prod", "company", "ACME", by="user:alice")
    with transaction(sessions) as s:
        assert clients.unlink(s, "cw-prod", "company", "ACME", by="user:bob") == "acme"
    with pytest.raises(NotFound, match="not linked to any client"), transaction(sessions) as s:
        clients.unlink(s, "cw-prod", "company", "ACME", by="user:bob")
    with sessions() as s:
        rows = s.query(AuditEntry).order_by(AuditEntry.id).all()
        assert [(r.action, r.actor, r.run_id) for r in rows] == [
            ("client_saved", "user:alice", None), ("client_linked", "user:alice", None),
            ("client_unlinked", "user:bob", None)]
        assert rows[1].data == {"client": "acme", "source": "cw-prod", "type": "company",
                                "vendor_id": "ACME"}
        assert audit.verify(s).ok


def test_config_file_is_applied_and_authoritative_for_its_own_links(sessions) -> None:
    """clients.yaml creates and updates clients; its removed links go; CLI links stay."""
    clients = directory()
    spec = ClientSpec(key="acme", name="Acme", tags=("msp",),
                      links=(LinkSpec(source="cw-prod", id="ACME"),
                             LinkSpec(source="datto", type="site", id="S1")))
    with transaction(sessions) as s:
        assert clients.apply(s, [spec], file="clients.yaml") == 3
    with transaction(sessions) as s:
        clients.link(s, "acme", "ninja", "organization", "7", by="user:alice")
        assert clients.apply(s, [spec], file="clients.yaml") == 0  # nothing to do again
    # When the file drops the Datto site and renames the client
    smaller = spec.model_copy(update={"name": "Acme Ltd",
                                      "links": (LinkSpec(source="cw-prod", id="ACME"),)})
    with transaction(sessions) as s:
        clients.apply(s, [smaller], file="clients.yaml")
    with sessions() as s:
        row = clients.get(s, "acme")
        assert row.name == "Acme Ltd" and row.tags == ["msp"]
        assert sorted((x.source, x.vendor_id) for x in row.links) == [
            ("cw-prod", "ACME"), ("ninja", "7")]
    # A declared record another real client holds is a config error naming the file
    with transaction(sessions) as s:
        clients.save(s, "globex", by="user:alice")
        clients.link(s, "globex", "psa2", "company", "G", by="user:alice")
    clash = ClientSpec(key="acme", links=(LinkSpec(source="psa2", id="G"),))
    with pytest.raises(ConfigError, match=r"clients.yaml \[clients.acme.links\].*'globex'"), \
            transaction(sessions) as s:
        clients.apply(s, [clash], file="clients.yaml")


@pytest.mark.parametrize(("text", "message", "line"), [
    ("clients:\n  Acme Corp:\n    name: x\n", "client key 'Acme Corp' must be", 2),
    ("clients:\n  acme:\n    calendar: mars\n", "unknown calendar 'mars'", 3),
    ("clients:\n  acme:\n    links:\n      - {source: cw, type: shop, id: 1}\n",
     "type must be one of", 4),
    ("clients:\n  acme:\n    lnks: []\n", "unknown key 'lnks' (a client has name, calendar, "
     "tags and links); did you mean 'links'?", 3),
    ("clients:\n  a:\n    links: [{source: cw, id: X}]\n  b:\n    links: [{source: cw, id: X}]\n",
     "cw company X is already linked to client 'a'", 5),
    ("client:\n  a: {}\n", "expected a top-level 'clients:'", 1),
])
def test_clients_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str,
                                               line: int) -> None:
    """A broken clients.yaml is refused with file, line and what is wrong."""
    path = tmp_path / "clients.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_clients(path, calendars={"default", "uk"})
    assert message in err.value.message
    assert err.value.file == str(path)
    assert err.value.line == line


def test_shipped_clients_file_and_its_example_are_valid(tmp_path: Path) -> None:
    """config/clients.yaml declares nobody; its commented example loads once uncommented."""
    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "config" / "clients.yaml"
    calendars = {"default", "us-east"}
    assert load_clients(shipped, calendars=calendars) == []
    lines = shipped.read_text().splitlines()
    start = lines.index("# clients:")
    example = [line[2:] for line in lines[start:] if line.startswith("# ")]
    (tmp_path / "clients.yaml").write_text("\n".join(example) + "\n")
    specs = load_clients(tmp_path / "clients.yaml", calendars=calendars)
    assert [s.key for s in specs] == ["acme", "globex"]
    assert specs[1].links[0].id == "19300" and specs[1].calendar == "us-east"


def _event(n: str, company: str, name: str) -> Event:
    return Event(source="cw-prod", vendor="connectwise", kind=EventKind.TICKET_CREATED,
                 dedupe_key=f"ticket:{n}", occurred_at=NOW,
                 client=ClientRef(id=company, name=name))
