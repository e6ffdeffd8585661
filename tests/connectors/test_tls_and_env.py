"""Config admins can get right: a per-source CA bundle, TLS failures named as such, .env."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import TLSFailed, build_connector
from hub.config.yamlio import config_env
from hub.errors import ConfigError
from hub.services.sources import load_sources

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")

SOURCE = """\
sources:
  cw-onprem:
    vendor: connectwise
    {ca_line}
    config:
      site: {site}
      company_id: acme
      public_key: pub
      private_key: ${{CW_ONPREM_KEY}}
      client_id: 6f0f3c2e-0000-4000-8000-000000000000
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([str(OPENSSL), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA and a server certificate for 127.0.0.1 that it signed."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=msphub test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=d)
    return d


class _Api(http.server.BaseHTTPRequestHandler):
    """Answers every GET with an empty JSON array (an empty ticket page)."""

    def do_GET(self) -> None:  # the stdlib names the handler method
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def onprem(pki: Path) -> Iterator[str]:
    """An HTTPS "on-premise PSA" on 127.0.0.1 with a certificate from the private CA."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _write(tmp_path: Path, site: str, ca_line: str = "") -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(SOURCE.format(site=site, ca_line=ca_line))
    return path


def test_a_source_with_its_own_ca_bundle_connects(tmp_path: Path, pki: Path,
                                                  onprem: str) -> None:
    """``ca_bundle`` (relative to connectors.yaml) makes the private CA trusted."""
    shutil.copy(pki / "ca.pem", tmp_path / "psa-ca.pem")
    path = _write(tmp_path, onprem, "ca_bundle: psa-ca.pem")

    sources = load_sources(path, env={"CW_ONPREM_KEY": "k"})
    source = sources.get("cw-onprem")
    assert source is not None
    pages = list(source.connector.poll("tickets", None))  # type: ignore[attr-defined]
    sources.close()

    assert [p.events for p in pages] == [[]]


def test_an_untrusted_certificate_is_reported_as_tls(onprem: str) -> None:
    """Without the bundle the failure says TLS and names the host, not "ConnectError"."""
    connector = build_connector("connectwise", "cw-onprem", {
        "site": onprem, "company_id": "acme", "public_key": "pub", "private_key": "k",
        "client_id": "6f0f3c2e-0000-4000-8000-000000000000"})

    with pytest.raises(TLSFailed) as info:
        list(connector.poll("tickets", None))  # type: ignore[attr-defined]
    connector.close()

    assert info.value.host == "127.0.0.1"
    assert "TLS certificate of 127.0.0.1 not trusted" in str(info.value)
    assert "ca_bundle" in str(info.value) and "ConnectError" not in str(info.value)


def test_a_missing_ca_bundle_names_file_and_key(tmp_path: Path) -> None:
    """A bundle path that does not exist is a ConfigError at the ``ca_bundle`` key."""
    path = _write(tmp_path, "https://psa.example.test", "ca_bundle: nowhere.pem")

    with pytest.raises(ConfigError) as info:
        load_sources(path, env={"CW_ONPREM_KEY": "k"})

    assert info.value.key == "sources.cw-onprem.ca_bundle" and info.value.line == 4
    assert "nowhere.pem" in str(info.value)


def test_a_ca_bundle_without_certificates_is_refused(tmp_path: Path) -> None:
    """A file that is not PEM certificates is refused at load time, not at first call."""
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    path = _write(tmp_path, "https://psa.example.test", "ca_bundle: junk.pem")

    with pytest.raises(ConfigError) as info:
        load_sources(path, env={"CW_ONPREM_KEY": "k"})

    assert "no usable PEM certificates" in str(info.value)


def test_env_references_resolve_from_the_dotenv_file(tmp_path: Path) -> None:
    """ConnectWise finding: ``${CW_ONPREM_KEY}`` set only in ``.env`` (as .env.example
    suggests) used to be "not set"; through ``config_env`` it resolves."""
    (tmp_path / ".env").write_text("MSPHUB_LOG_LEVEL=INFO\nCW_ONPREM_KEY=from-dotenv\n")
    path = _write(tmp_path, "https://psa.example.test")

    sources = load_sources(path, env=config_env(tmp_path / ".env", environ={}))
    source = sources.get("cw-onprem")
    assert source is not None
    key = source.connector.config.private_key  # type: ignore[attr-defined]
    sources.close()

    assert key.get_secret_value() == "from-dotenv"


def test_the_process_environment_wins_over_dotenv(tmp_path: Path) -> None:
    """Real environment variables override the file, as for the MSPHUB_* settings."""
    (tmp_path / ".env").write_text('CW_ONPREM_KEY="file"\nONLY_IN_FILE=yes\nEMPTY\n')

    env = config_env(tmp_path / ".env", environ={"CW_ONPREM_KEY": "process"})

    assert env == {"CW_ONPREM_KEY": "process", "ONLY_IN_FILE": "yes"}
    assert config_env(tmp_path / "missing.env", environ={"A": "1"}) == {"A": "1"}
    assert config_env(None, environ={}) == {}
