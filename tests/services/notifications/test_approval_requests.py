"""An approval step that opens tells the approving role's holders who may approve it (not
the person who did the approved steps), once, with a link to the run."""

from __future__ import annotations

from pathlib import Path

from hub.runtime.process import Runtime
from hub.services.notification_delivery import deliver_due
from hub.store.db import transaction
from tests.services.notifications.conftest import rows
from tests.services.notifications.servers import SMTPServer

SIGNED_OFF = """\
id: signed-off
title: Signed-off change
version: 1
steps:
  - id: change
    title: Make the change
    role: engineer
  - id: signoff
    title: Manager sign-off
    after: [change]
    approval: {role: service-manager}
"""


def test_the_manager_is_asked_to_approve_once(runtime: Runtime, smtp: SMTPServer) -> None:
    """Given carol finishing the step a sign-off approves, alice (service manager) is asked
    by email, Teams and Slack; carol is not, and a second look at the run asks nobody."""
    Path(runtime.ctx.settings.playbooks_dir, "signed-off.yaml").write_text(SIGNED_OFF)
    with transaction(runtime.ctx.sessions) as session:
        run = runtime.ctx.runs.launch(session, "signed-off", client="ACME", by="user:bob")
        run_id = run.id
    with transaction(runtime.ctx.sessions) as session:
        runtime.ctx.runs.complete(session, run_id, "change", by="user:carol")
    asked = rows(runtime, kind="approval_requested")
    assert sorted((r.recipient, r.channel) for r in asked) == [
        ("alice", "email"), ("alice", "slack"), ("alice", "teams")]
    assert {r.step_id for r in asked} == {"signoff"}
    deliver_due(runtime.ctx)
    [mail] = smtp.to("alice@msp.example")
    assert mail.message["Subject"].strip() == (
        "[msphub] Approval requested: Manager sign-off (Acme Corp)")
    assert f"http://hub.test/runs/{run_id}" in str(
        mail.message.get_body(("plain",)).get_content())
