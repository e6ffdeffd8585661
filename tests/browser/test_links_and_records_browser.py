"""End to end in a real headless Chromium: a manager finds the suggested client links (read
from a Datto RMM sandbox) and accepts one; a client opens a branded share link and
downloads its PDF; the rules page shows per-rule counts. Screenshots of the pages."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader

from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer
from hub.api import create_app
from hub.api.dashboard.branding import Brand
from hub.config.branding import load_branding
from hub.config.clients import load_clients
from hub.core.states import InboxStatus
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api
from tests.api.test_dashboard_branding import BRANDING
from tests.api.test_dashboard_evidence_pdf import pdf_text
from tests.api.test_dashboard_rules import RULES
from tests.api.test_dashboard_rules_hits import LEAVER, VIP, _result, _stored
from tests.browser.conftest import serve
from tests.browser.test_dashboard_browser import _sign_in, _user
from tests.services.linking_scenario import CLIENTS_YAML, seed_sites

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    """The Datto RMM sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def test_manager_accepts_a_suggested_client_link(
        served: tuple[Api, str], browser_page: Any, shots: Path, rmm: SandboxServer,
        tmp_path: Path) -> None:
    """Find suggested links, accept the Globex one, see it linked and gone from the list."""
    api, base = served
    page = browser_page
    # Given the directory of a small MSP and its Datto RMM account as the `datto` source
    uids = seed_sites(rmm.sandbox.store)
    file = tmp_path / "clients.yaml"
    file.write_text(CLIENTS_YAML, encoding="utf-8")
    with transaction(api.ctx.sessions) as session:
        api.ctx.clients.apply(session, load_clients(file), file=str(file))
    api.rt.sources.items["datto"] = Source("datto", SourceSpec(vendor="datto-rmm"),
                                           build_connector("datto-rmm", "datto",
                                                           rmm.connector_config()))
    _user(api, "mia", Role.MANAGER)
    # When the manager opens the clients page and asks for suggestions
    _sign_in(page, base, "mia")
    page.goto(f"{base}/ops/clients")
    page.get_by_role("button", name="Find suggested links").click()
    page.wait_for_url("**/ops/clients/suggestions**")
    # Then the likely links are listed with their confidence
    table = page.locator("table.suggested")
    assert "Globex Corp." in table.inner_text() and "Acme Manufacturing - HQ" in table.inner_text()
    page.screenshot(path=str(shots / "client-suggestions.png"), full_page=True)
    # When she accepts the Globex one
    page.get_by_role("button", name="Accept: link Globex Corp. to Globex Corporation").click()
    page.wait_for_url("**/ops/clients/suggestions**")
    page.locator("table.suggested").wait_for()
    # Then it is gone from the suggestions and the site is linked to globex
    assert "Globex Corp." not in page.locator("table.suggested").inner_text()
    assert "Acme Manufacturing - HQ" in page.locator("table.suggested").inner_text()
    links = api.get("/api/clients/globex").json()["links"]
    assert ("datto", "site", uids["Globex Corp."]) in {
        (x["source"], x["type"], x["vendor_id"]) for x in links}
    globex_row = page.locator("tr", has_text="globex").last.inner_text()
    assert uids["Globex Corp."] in globex_row


def logo() -> bytes:
    """A small logo that shows on the band: white lettering on the accent colour."""
    image = Image.new("RGB", (120, 40), (238, 153, 51))
    ImageDraw.Draw(image).text((14, 12), "NORTHWIND", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def branded_site(make_api: Callable[..., Api], tmp_path: Path) -> Iterator[tuple[Api, str]]:
    """The app with the MSP's branding (name, logo, colours) in force, served."""
    api = make_api()
    (tmp_path / "northwind.png").write_bytes(logo())
    (tmp_path / "branding.yaml").write_text(BRANDING, encoding="utf-8")
    app = create_app(api.rt)
    app.state.brand = Brand(load_branding(tmp_path / "branding.yaml"))
    with serve(app) as base:
        yield api, base


def test_client_opens_a_branded_record_and_downloads_its_pdf(
        branded_site: tuple[Api, str], browser_page: Any, shots: Path) -> None:
    """The shared page shows the MSP's name and logo; its PDF is that run's record."""
    api, base = branded_site
    page = browser_page
    # Given a run with a finished step, shared by a manager
    run_id = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
             {"evidence": "Called HR back"})
    _user(api, "max3", Role.MANAGER)
    _sign_in(page, base, "max3")
    page.goto(f"{base}/runs/{run_id}/record")
    page.get_by_role("button", name="Create link").click()
    url = page.locator("code.share-url").inner_text()
    # When the client opens it without a session
    page.context.clear_cookies()
    page.goto(url)
    # Then the page is branded: the name, and a logo the browser loaded from the hub
    assert page.locator(".brand-name").inner_text() == "Northwind IT"
    shown = page.get_by_alt_text("Northwind IT logo")
    assert shown.evaluate("img => img.complete && img.naturalWidth") == 120
    band = page.locator(".brandbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert band == "rgb(11, 83, 148)"
    page.screenshot(path=str(shots / "shared-record-branded.png"), full_page=True)
    # When the client downloads the PDF
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    data = Path(download.value.path()).read_bytes()
    # Then it is that run's record, branded
    text = pdf_text(data)
    assert "Northwind IT" in text and "Completion record for Acme Ltd" in text
    assert "Called HR back" in text
    assert PdfReader(io.BytesIO(data)).metadata.author == "Northwind IT"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The mapping rules the app loads (written before the app is built)."""
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "tickets.yaml").write_text(RULES, encoding="utf-8")
    return folder


def test_rules_page_shows_per_rule_counts(
        rules_dir: Path, served: tuple[Api, str], browser_page: Any, shots: Path) -> None:
    """The rules page lists each rule with its matched, failed and near-miss events."""
    api, base = served
    page = browser_page
    # Given events the leaver rule matched, one of them failing
    _stored(api, "ok", _result([LEAVER], near=[VIP]), InboxStatus.DONE)
    _stored(api, "bad", _result([LEAVER], errors=[LEAVER]), InboxStatus.FAILED)
    _user(api, "mo", Role.MANAGER)
    # When a manager opens the rules page
    _sign_in(page, base, "mo")
    page.goto(f"{base}/ops/rules")
    # Then the leaver rule shows 2 matched, 1 failed (a link to the failed events), 0 near
    table = page.locator("table").first
    assert table.locator("th").all_text_contents()[-3:] == ["Matched", "Failed", "Near misses"]
    cells = table.locator("tr", has_text=LEAVER).locator("td.num").all_inner_texts()
    assert cells == ["2", "1", "0"]
    page.screenshot(path=str(shots / "rules.png"), full_page=True)
    table.locator("tr", has_text=LEAVER).get_by_role("link", name="1").click()
    page.wait_for_url("**/ops/events?status=failed")
