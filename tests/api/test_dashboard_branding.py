"""Branding from ``config/branding.yaml``: the MSP's name, logo and colours on the record
page, the shared page and the PDF; a bad file is refused with file, line and key."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader

from hub.api import create_app
from hub.config.branding import DEFAULT, load_branding
from hub.errors import ConfigError
from hub.runtime.root import build_runtime
from hub.services.sources import Sources
from hub.services.tokens import Role, create_token
from hub.settings import Settings
from hub.store.db import make_engine, transaction
from hub.store.migrate import upgrade
from tests.api.conftest import REPO, START, TOKEN_NAMES, Api, Clock
from tests.api.test_dashboard_evidence import _share, _sign_in
from tests.api.test_dashboard_evidence_pdf import pdf_text

BRANDING = """\
name: Northwind IT
logo: northwind.png
primary: "#0B5394"
accent: "#E93"
footer: "Questions? support@northwind.example"
"""


def png(colour: tuple[int, int, int] = (11, 83, 148)) -> bytes:
    """A small PNG logo."""
    out = io.BytesIO()
    Image.new("RGB", (120, 40), colour).save(out, format="PNG")
    return out.getvalue()


def _config(tmp_path: Path, branding: str, logo: bytes | None = None) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "branding.yaml").write_text(branding, encoding="utf-8")
    if logo is not None:
        (config / "northwind.png").write_bytes(logo)
    return config


@pytest.fixture
def make_branded(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build the app over a config dir with this branding.yaml (and a logo)."""
    built: list[Api] = []

    def build(branding: str = BRANDING, logo: bytes | None = None) -> Api:
        config = _config(tmp_path, branding, png() if logo is None else logo)
        settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=db_url,
                            playbooks_dir=REPO / "playbooks", config_dir=config,
                            mappings_dir=tmp_path / "mappings", log_format="console")
        engine = make_engine(db_url)
        upgrade(engine)
        clock = Clock(START)
        rt = build_runtime(settings, clock=clock, engine=engine, sources=Sources())
        api = Api(http=TestClient(create_app(rt)), rt=rt, clock=clock)
        with transaction(rt.ctx.sessions) as session:
            api.tokens = {role: create_token(session, name=name, role=role, now=START)
                          for role, name in TOKEN_NAMES.items()}
        built.append(api)
        return api

    yield build
    for api in built:
        api.http.close()
        api.ctx.engine.dispose()


def test_the_loader_normalises_colours_and_reads_the_logo(tmp_path: Path) -> None:
    """Hex colours become #rrggbb; the logo is read once; text on the band stays readable."""
    config = _config(tmp_path, BRANDING, png())
    brand = load_branding(config / "branding.yaml")
    assert (brand.name, brand.primary, brand.accent) == ("Northwind IT", "#0b5394", "#ee9933")
    assert brand.logo is not None and brand.logo.media_type == "image/png"
    assert brand.on_primary == "#ffffff"  # white on dark blue
    light = tmp_path / "light.yaml"
    light.write_text('primary: "#f4e04d"\n', encoding="utf-8")
    assert load_branding(light).on_primary == "#111111"  # dark text on yellow
    assert load_branding(tmp_path / "absent.yaml") == DEFAULT
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    assert load_branding(empty) == DEFAULT


@pytest.mark.parametrize(("text", "line", "key", "says"), [
    ('name: X\nprimary: "blue; background: url(x)"\n', 2, "primary", "not a CSS hex colour"),
    ("name: X\nprimary: #0b5394\n", 2, "primary", "quote it"),
    ('accent: "#12345"\n', 1, "accent", "not a CSS hex colour"),
    ("name: X\ncolour: red\n", 2, "colour", "unknown key 'colour'"),
    ("logo: missing.png\n", 1, "logo", "cannot read the logo"),
    ("logo: fake.png\n", 1, "logo", "must be a PNG or JPEG"),
    ("- a list\n", 1, None, "expected a mapping"),
])
def test_a_bad_branding_file_names_file_line_and_key(
        tmp_path: Path, text: str, line: int, key: str | None, says: str) -> None:
    """Colours are validated (no CSS smuggled into the page), logos are checked."""
    (tmp_path / "fake.png").write_text("<svg onload=alert(1)>", encoding="utf-8")
    file = tmp_path / "branding.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_branding(file)
    error = caught.value
    assert error.file == str(file) and error.line == line and error.key == key
    assert says in error.message


def test_record_shared_page_and_pdf_carry_the_branding(
        make_branded: Callable[..., Api]) -> None:
    """Name, logo and colours on the record page, the shared page (and its refusal), the PDF."""
    api = make_branded()
    run_id = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    # The signed-in record page
    _sign_in(api, Role.VIEWER)
    page = api.http.get(f"/runs/{run_id}/record").text
    assert "--brand: #0b5394; --brand-ink: #ffffff; --brand-accent: #ee9933;" in page
    assert '<span class="brand-name">Northwind IT</span>' in page
    assert '<img src="/brand/logo" alt="Northwind IT logo">' in page
    assert "Questions? support@northwind.example" in page
    # The logo is served by the hub itself, without a session (the client's page shows it)
    api.http.cookies.clear()
    logo = api.http.get("/brand/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
    assert logo.content == png()
    # The shared page
    path = _share(api, run_id)
    api.http.cookies.clear()
    shared = api.http.get(path).text
    assert "Northwind IT" in shared and "--brand: #0b5394" in shared and "/brand/logo" in shared
    # The PDF: the name in the header and as author, the logo embedded, the footer line
    data = api.http.get(f"{path}/record.pdf").content
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata.author == "Northwind IT"
    text = pdf_text(data)
    assert text.startswith("Northwind IT") and "Questions? support@northwind.example" in text
    assert len(reader.pages[0].images) == 1
    drawn = reader.pages[0].get_contents().get_data()  # type: ignore[union-attr]
    assert b"0.0431 0.3255 0.5804 rg" in drawn  # the header band in the primary colour
    # A refused link is branded too, and names the MSP to ask
    refused = api.http.get(path[:-2] + "zz")
    assert refused.status_code == 403 and "Ask Northwind IT for a new link" in refused.text


def test_an_unbranded_hub_says_msphub(api: Api) -> None:
    """No branding.yaml: "msphub" in the dashboard's colours, and no logo."""
    run_id = api.launch(client="ACME")["id"]
    _sign_in(api, Role.VIEWER)
    page = api.http.get(f"/runs/{run_id}/record").text
    assert '<span class="brand-name">msphub</span>' in page and "/brand/logo" not in page
    assert "--brand: #1d2330; --brand-ink: #ffffff;" in page
    assert api.http.get("/brand/logo").status_code == 404


def test_a_broken_file_falls_back_and_managers_see_why(
        make_branded: Callable[..., Api]) -> None:
    """The records still open (default branding); the manager's record page says why."""
    # Given a branding file with a colour that is not a hex colour
    api = make_branded('name: Northwind IT\nprimary: "red"\n')
    run_id = api.launch(client="ACME")["id"]
    # When a manager opens the record
    _sign_in(api, Role.MANAGER)
    page = api.http.get(f"/runs/{run_id}/record")
    # Then it shows, with the default branding and the reason
    assert page.status_code == 200
    assert "The branding file was refused" in page.text and "branding.yaml" in page.text
    assert '<span class="brand-name">msphub</span>' in page.text
    # And a viewer, or a client with a link, gets the default branding without the message
    path = _share(api, run_id)
    _sign_in(api, Role.VIEWER)
    assert "The branding file was refused" not in api.http.get(f"/runs/{run_id}/record").text
    api.http.cookies.clear()
    shared = api.http.get(path)
    assert shared.status_code == 200 and "The branding file was refused" not in shared.text
