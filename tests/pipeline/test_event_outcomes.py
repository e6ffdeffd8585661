"""Event outcomes that show: a failed event is logged at warning, counted in /metrics and
told to its ticket once; a partly applied event says so; shadow rules record what they
would have done and change nothing; draft rules are never evaluated; the trace names the
version of each rule that acted."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from structlog.testing import capture_logs

from hub.api.metrics import ApiMetrics
from hub.core.events import Event
from hub.core.mapping.engine import RuleSet
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.inbox import add_events, reopen
from hub.services.outcomes import rule_version
from hub.services.pipeline import process_event
from hub.store.db import transaction
from hub.store.models import InboxEvent, OutboxNote, Run
from tests.pipeline.conftest import MAPPINGS
from tests.pipeline.fakes import FakePSA
from tests.pipeline.test_inprocess import leaver_event

WITH_DEFAULT = MAPPINGS.replace('"{{ ticket.contact.name }}"',
                                '"{{ ticket.contact.name | default(ticket.summary) }}"')


def store(rt: Runtime, body: dict[str, Any]) -> int:
    """Put one event in the inbox (as a webhook would); returns its id."""
    with transaction(rt.ctx.sessions) as session:
        [event_id] = add_events(session, [Event.model_validate(body)], via="webhook",
                                now=rt.ctx.clock())
    return event_id


def no_contact(ticket: str = "T-200", **data: Any) -> dict[str, Any]:
    """A leaver ticket without a contact: the rule's required input cannot be rendered."""
    body = leaver_event(ticket, summary="Leaver: Sam Doe", **data)
    del body["data"]["ticket"]["contact"]
    return body


def rules_from(rt: Runtime, text: str) -> RuleSet:
    """Replace the runtime's mapping file with ``text`` and load it."""
    (rt.ctx.settings.mappings_dir / "rules.yaml").write_text(text)
    assert rt.rules.reload()
    return rt.rules.rules


def row(rt: Runtime, event_id: int) -> InboxEvent:
    with rt.ctx.sessions() as session:
        found = session.get(InboxEvent, event_id)
        assert found is not None
        session.expunge(found)
        return found


def failure_notes(rt: Runtime) -> list[OutboxNote]:
    with rt.ctx.sessions() as session:
        return list(session.execute(
            select(OutboxNote).where(OutboxNote.kind == "event_failed")).scalars())


def runs(rt: Runtime) -> list[Run]:
    with rt.ctx.sessions() as session:
        return list(session.execute(select(Run)).unique().scalars())


def test_a_leaver_without_a_contact_fails_visibly_once_and_launches_after_the_fix(
        runtime: Runtime, psa: FakePSA) -> None:
    """Failed, at warning with rule and reason, one note on the ticket (not two after a
    failing retry); fixed and retried, the run launches once."""
    # Given a leaver ticket whose contact is missing
    event_id = store(runtime, no_contact())
    # When it is processed
    with capture_logs() as logs:
        process_event(runtime.ctx, runtime.live_rules(), event_id)
    # Then it failed, and the log says which rule and why, at warning
    assert row(runtime, event_id).status == "failed"
    [warned] = [e for e in logs if e["event"] == "event_failed"]
    assert warned["log_level"] == "warning"
    assert warned["rule"] == "leaver-starts-offboarding" and "contact" in warned["reason"]
    # and the ticket is told, once, what is missing and how to retry
    [note] = failure_notes(runtime)
    assert (note.source, note.ticket_id, note.run_id) == ("psa", "T-200", None)
    assert "no checklist was started" in note.text and "contact" in note.text
    assert f"msphub events retry {event_id}" in note.text
    assert row(runtime, event_id).result["failure_note"] == note.key

    # When it is retried before the rule is fixed
    with transaction(runtime.ctx.sessions) as session:
        reopen(session, event_id)
    process_event(runtime.ctx, runtime.live_rules(), event_id)
    # Then it fails again, with still one note
    assert row(runtime, event_id).status == "failed"
    assert len(failure_notes(runtime)) == 1

    # When the rule gets a fallback and the event is retried
    fixed = rules_from(runtime, WITH_DEFAULT)
    with transaction(runtime.ctx.sessions) as session:
        reopen(session, event_id)
    result = process_event(runtime.ctx, fixed, event_id)
    # Then the run is launched, once, with the fallback as the input
    assert row(runtime, event_id).status == "done"
    assert [a["effect"] for a in result.actions] == ["launched"]
    [run] = runs(runtime)
    assert run.inputs["leaver_name"] == "Leaver: Sam Doe"
    # and the notes reach the ticket: the failure note, then the launch
    with runtime.ctx.sessions() as session:
        pending = list(session.execute(select(OutboxNote.id).where(
            OutboxNote.ticket_id == "T-200").order_by(OutboxNote.id)).scalars())
    for note_id in pending:
        writeback.deliver(runtime.ctx, runtime.sources, note_id)
    texts = [n["text"] for n in psa.notes["T-200"]]
    assert len(texts) == 2
    assert "no checklist was started" in texts[0] and "launched" in texts[1]


def test_on_error_none_fails_without_a_note(runtime: Runtime) -> None:
    """A rule with ``on_error: none`` only marks the event failed."""
    quiet = MAPPINGS.replace("    launch:\n      playbook: user-offboarding",
                             "    on_error: none\n    launch:\n      playbook: user-offboarding")
    rules = rules_from(runtime, quiet)
    event_id = store(runtime, no_contact("T-201"))
    process_event(runtime.ctx, rules, event_id)
    assert row(runtime, event_id).status == "failed"
    assert failure_notes(runtime) == []


def test_an_event_that_fails_in_part_says_so_and_keeps_what_applied(
        runtime: Runtime) -> None:
    """Two rules match; one cannot render: the other's launch applies (per-action
    savepoints), the event is failed and ``partial``; a retry adds only what is missing."""
    both = MAPPINGS + """\
  - id: leaver-also-onboards-nothing
    on: ticket.created
    from: [fakepsa]
    if: {ticket.type: Leaver}
    launch:
      playbook: monthly-maintenance
"""
    rules = rules_from(runtime, both)
    event_id = store(runtime, no_contact("T-202"))
    result = process_event(runtime.ctx, rules, event_id)
    stored = row(runtime, event_id)
    assert stored.status == "failed"
    assert stored.result["partial"] is True
    assert [e["rule_id"] for e in stored.result["errors"]] == ["leaver-starts-offboarding"]
    assert [a["effect"] for a in result.actions] == ["launched"]
    assert [r.playbook_id for r in runs(runtime)] == ["monthly-maintenance"]
    # a retry after the fix launches the missing run only
    fixed = rules_from(runtime, WITH_DEFAULT + both[len(MAPPINGS):])
    with transaction(runtime.ctx.sessions) as session:
        reopen(session, event_id)
    again = process_event(runtime.ctx, fixed, event_id)
    assert sorted(a["effect"] for a in again.actions) == ["already_launched", "launched"]
    assert sorted(r.playbook_id for r in runs(runtime)) == ["monthly-maintenance",
                                                            "user-offboarding"]
    assert "partial" not in row(runtime, event_id).result


def test_a_shadow_rule_records_what_it_would_have_done_and_changes_nothing(
        runtime: Runtime) -> None:
    """shadow: evaluated on the live event, "would have launched …" in the trace, no run,
    no note; promoted by one word, the same event pattern launches the run."""
    shadow = MAPPINGS.replace("    launch:\n      playbook: user-offboarding",
                              "    mode: shadow\n    launch:\n      playbook: user-offboarding")
    rules = rules_from(runtime, shadow)
    event_id = store(runtime, leaver_event("T-300"))
    result = process_event(runtime.ctx, rules, event_id)
    stored = row(runtime, event_id)
    assert stored.status == "ignored" and result.actions == []
    [would] = stored.result["shadow"]
    assert would["rule_id"] == "leaver-starts-offboarding"
    assert would["would"] == ("would have launched user-offboarding for ACME "
                              "(leaver_name='Jo Bloggs')")
    assert stored.result["versions"] == {
        "leaver-starts-offboarding": rule_version(rules.get("leaver-starts-offboarding"))}
    assert runs(runtime) == [] and failure_notes(runtime) == []
    # a shadow rule that cannot render does not fail the event either
    missing = store(runtime, no_contact("T-301"))
    process_event(runtime.ctx, rules, missing)
    assert row(runtime, missing).status == "ignored"
    assert "contact" in row(runtime, missing).result["shadow"][0]["error"]
    assert failure_notes(runtime) == []

    # When the rule is promoted (shadow → live) and the same kind of ticket arrives
    live = rules_from(runtime, shadow.replace("mode: shadow", "mode: live"))
    promoted = store(runtime, leaver_event("T-302"))
    process_event(runtime.ctx, live, promoted)
    # Then it launches, and the trace names the promoted version (a new digest)
    assert row(runtime, promoted).status == "done"
    assert [r.ticket_id for r in runs(runtime)] == ["T-302"]
    version = row(runtime, promoted).result["versions"]["leaver-starts-offboarding"]
    assert version == rule_version(live.get("leaver-starts-offboarding"))
    assert version != stored.result["versions"]["leaver-starts-offboarding"]


def test_a_draft_rule_is_never_evaluated(runtime: Runtime) -> None:
    """draft: loaded and checked, but no event is matched, missed or failed by it."""
    draft = MAPPINGS.replace("    launch:\n      playbook: user-offboarding",
                             "    mode: draft\n    launch:\n      playbook: user-offboarding")
    rules = rules_from(runtime, draft)
    assert "leaver-starts-offboarding" in {r.id for r in rules.rules}
    event_id = store(runtime, no_contact("T-400"))
    process_event(runtime.ctx, rules, event_id)
    stored = row(runtime, event_id)
    assert stored.status == "ignored"
    assert stored.result["errors"] == [] and "shadow" not in stored.result
    assert runs(runtime) == []


def test_failed_events_are_a_metrics_gauge_by_status(runtime: Runtime) -> None:
    """/metrics: ``msphub_inbox_events{status}`` counts the inbox by outcome."""
    metrics = ApiMetrics(runtime.ctx)

    def by_status() -> dict[str, float]:
        families = text_string_to_metric_families(metrics.render().decode())
        [inbox] = [f for f in families if f.name == "msphub_inbox_events"]
        return {s.labels["status"]: s.value for s in inbox.samples}

    assert by_status() == {"pending": 0, "done": 0, "ignored": 0, "failed": 0, "dead": 0}
    failed = store(runtime, no_contact("T-500"))
    store(runtime, leaver_event("T-501"))
    process_event(runtime.ctx, runtime.live_rules(), failed)
    assert by_status() == {"pending": 1, "done": 0, "ignored": 0, "failed": 1, "dead": 0}
