"""``msphub clients``: the client directory from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli, one_line


def row(*cells: str) -> str:
    """Adjacent cells of one table row as rich prints them (after one_line)."""
    return " │ ".join(cells)


def test_add_link_show_list_unlink(cli: Cli) -> None:
    """A client is added, linked to two tools, shown, listed, then unlinked."""
    assert cli("clients", "add", "acme", "--name", "Acme Corp", "--tag", "managed").exit_code == 0
    for args in (["acme", "cw-prod", "company", "ACME"],
                 ["acme", "datto", "site", "5f6e7d8c", "--name", "Acme HQ"]):
        result = cli("clients", "link", *args)
        assert result.exit_code == 0, result.output
    shown = one_line(cli("clients", "show", "acme").stdout)
    assert "acme Acme Corp" in shown and "tags: managed" in shown
    assert row("cw-prod", "company", "ACME") in shown
    assert row("datto", "site", "5f6e7d8c", "Acme HQ") in shown
    listed = one_line(cli("clients", "list").stdout)
    assert "acme" in listed and "Acme Corp" in listed
    assert "no clients" in cli("clients", "list", "--tag", "other").stdout
    gone = cli("clients", "unlink", "datto", "site", "5f6e7d8c")
    assert gone.exit_code == 0 and "from client acme" in gone.stdout
    assert "datto" not in cli("clients", "show", "acme").stdout


def test_refusals_are_one_clear_line(cli: Cli) -> None:
    """Another client's record, an unknown client, a bad type: exit 1 with the reason."""
    cli("clients", "add", "acme")
    cli("clients", "add", "globex")
    cli("clients", "link", "acme", "cw-prod", "company", "ACME")
    clash = cli("clients", "link", "globex", "cw-prod", "company", "ACME")
    assert clash.exit_code == 1
    assert "already linked to client 'acme'; unlink it there first" in one_line(clash.output)
    missing = cli("clients", "show", "nobody")
    assert missing.exit_code == 1 and "client 'nobody' is not in the directory" in missing.output
    bad = cli("clients", "link", "acme", "cw-prod", "shop", "1")
    assert bad.exit_code == 1 and "type must be one of" in bad.output
    assert "every vendor client seen in events is linked" in cli("clients", "unlinked").stdout


def test_clients_yaml_is_applied_and_a_broken_one_names_its_line(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`clients sync` applies config/clients.yaml; a typo is refused with file and line."""
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(config))
    (config / "clients.yaml").write_text(
        "clients:\n  acme:\n    name: Acme\n    links:\n      - {source: cw, id: ACME}\n")
    assert cli("clients", "sync").exit_code == 0
    assert row("cw", "company", "ACME") in one_line(cli("clients", "show", "acme").stdout)
    (config / "clients.yaml").write_text("clients:\n  acme:\n    nmae: Acme\n")
    broken = cli("clients", "sync")
    assert broken.exit_code == 1
    assert "clients.yaml:3" in broken.output and "did you mean 'name'?" in one_line(broken.output)
