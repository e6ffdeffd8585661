"""One count of "steps" everywhere: the CLI's table and run view and the launch note on
the ticket agree on the applicable steps (the note also names the ones left out)."""

from __future__ import annotations

import re

from sqlalchemy import select

from hub.runtime.root import build_context
from hub.settings import get_settings
from hub.store.models import OutboxNote
from tests.cli.conftest import Cli, one_line


def test_the_cli_and_the_launch_note_give_the_same_count(cli: Cli) -> None:
    """A new starter without a laptop has 3 of 4 steps to do: all of them say 3."""
    launched = cli("runs", "launch", "new-starter", "--client", "ACME", "-i",
                   "starter=Jo Starter", "-i", "laptop=no", "--ticket", "cw-prod:1234")
    assert launched.exit_code == 0, launched.output
    assert re.search(r"\b0/3\b", one_line(cli("runs", "list").stdout))
    assert "0/3 steps" in one_line(cli("runs", "show", "1").stdout)
    get_settings.cache_clear()
    ctx = build_context(get_settings())
    with ctx.sessions() as session:
        [text] = session.execute(select(OutboxNote.text).where(
            OutboxNote.kind == "launched")).scalars()
    ctx.engine.dispose()
    assert "launched — 3 steps (+1 not applicable)." in text
