"""The run page shows what an open step's RMM check still misses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.inventory import DeviceFacts
from hub.services.checks import run_checks
from hub.services.sources import Source, Sources, SourceSpec
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api

BEFORE = ("kickoff-meeting", "collect-contacts-sites", "previous-provider-handover",
          "provision-msp-access")


class Inventory:
    """An RMM connector's device listing: one PC with its agent offline."""

    def device_facts(self, site_ids: Sequence[str], **_: Any) -> list[DeviceFacts]:
        return [DeviceFacts(id="d1", site=site_ids[0], hostname="ACME-PC02", online=False)]


def test_the_run_page_lists_the_check_s_missing_devices(api: Api) -> None:
    """An open step whose check does not hold shows the check's newest missing list."""
    # Given ACME's onboarding with the agent step open and its RMM site linked
    ctx = api.ctx
    with transaction(ctx.sessions) as s:
        run_id = ctx.runs.launch(s, "client-onboarding", client="ACME", by="user:max",
                                 inputs={"go_live_date": "2025-03-10"}).id
        for step_id in BEFORE:
            ctx.runs.complete(s, run_id, step_id, by="user:alice", evidence="done")
        ctx.clients.link(s, "ACME", "rmm", "site", "S1", by="user:admin")
    sources = Sources({"rmm": Source("rmm", SourceSpec(vendor="datto-rmm"),
                                     Inventory())})  # type: ignore[arg-type]
    # When the check runs and the run page is opened
    [outcome] = run_checks(ctx, sources)
    page = api.get(f"/runs/{run_id}", Role.VIEWER)
    # Then the agent step's row names the offline PC
    assert outcome.result == "missing"
    assert page.status_code == 200
    assert "RMM check," in page.text and "still missing" in page.text
    assert "agents_online: ACME-PC02: agent offline (last seen never)" in page.text
