"""The shipped playbook library (playbooks/*.yaml): it loads, and it encodes the MSP rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config.playbooks import load_file, load_library, playbook_files
from hub.core.calendars import DueRule, DueSpec
from hub.core.checklists import approvals, engine
from hub.core.checklists.schema import InputType, Playbook, coerce_inputs
from hub.core.conditions import fields_of, parse_condition
from hub.core.events import EventKind
from hub.errors import ConfigError, NotAllowed, StepLocked

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = ROOT / "playbooks"
TEAM_FILE = ROOT / "config" / "team.yaml"

SHIPPED = {
    "client-onboarding",
    "user-onboarding",
    "user-offboarding",
    "device-provisioning",
    "monthly-maintenance",
    "quarterly-security-review",
    "security-incident-response",
}
ROLES = {
    "service-desk",
    "engineer",
    "senior-engineer",
    "security",
    "account-manager",
    "service-manager",
}

# user-offboarding: every step is due within 4 hours of launch, except these, which are
# inherently later (devices come back by courier; the account is deleted after retention).
OFFBOARDING_DUE_EXCEPTIONS = {
    "reimage-returned-devices": "5 business days",
    "delete-account": "30 days",
}
# user-offboarding: the access-revocation steps, which can never be skipped.
OFFBOARDING_REVOCATION = {
    "confirm-leaver",
    "disable-sign-in",
    "reset-password",
    "revoke-sessions",
    "remove-mfa-methods",
    "disable-remote-access",
    "wipe-mobile-devices",
    "secure-company-device",
    "revoke-app-access",
    "remove-groups-roles",
    "remove-licences",
    "update-records",
}

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def library() -> dict[str, Playbook]:
    """The shipped library, loaded exactly as the hub loads it."""
    lib = load_library(PLAYBOOKS)
    return {pb.id: pb for pb in lib}


def _due(rule: str | None) -> DueRule | None:
    return None if rule is None else DueSpec.parse(rule).rule


def _sample(spec: Any, flavour: bool) -> Any:
    """A valid launch value for one input; ``flavour`` flips booleans and choices."""
    if spec.type is InputType.BOOLEAN:
        return flavour
    if spec.type is InputType.CHOICE:
        return spec.choices[-1 if flavour else 0]
    if spec.type is InputType.INTEGER:
        return 25
    if spec.type is InputType.DATE:
        return "2025-03-14"
    if spec.type is InputType.EMAIL:
        return "someone@client.example"
    return "Sample value"


def _inputs(pb: Playbook, flavour: bool) -> dict[str, Any]:
    return {i.id: _sample(i, flavour) for i in pb.inputs}


def _work(pb: Playbook, run: engine.RunState, step_id: str, **extra: Any) -> engine.RunState:
    """Finish an open step: a sign-off approved by a second person holding its role, any
    other step completed by the technician (as a tick: no evidence form asked for)."""
    step = pb.step(step_id)
    if step.approval is not None:
        return approvals.approve_step(pb, run, step_id, by="user:approver",
                                      roles={step.approver_role or ""}, now=NOW).run
    return engine.complete_step(pb, run, step_id, by="user:test", now=NOW, **extra).run


def _launch(pb: Playbook, inputs: dict[str, Any]) -> engine.RunState:
    clean = coerce_inputs(pb, inputs)
    outcome = engine.launch(
        pb, run_id=1, client_id="ACME", inputs=clean, by="user:test", now=NOW,
        assign=lambda step: step.role, due=lambda rule: NOW + timedelta(days=1),
    )
    return outcome.run


# --------------------------------------------------------------------------- the whole library


def test_library_loads_every_shipped_playbook(library: dict[str, Playbook]) -> None:
    """Every shipped file loads with load_library and the seven playbooks are all there."""
    assert set(library) == SHIPPED
    assert len(playbook_files([PLAYBOOKS])) == len(SHIPPED)


def test_ids_are_unique_and_equal_the_file_name() -> None:
    """Each playbook id equals its file stem, so ids are unique and easy to find on disk."""
    ids = []
    for path in playbook_files([PLAYBOOKS]):
        loaded = load_file(path)
        assert loaded.playbook.id == path.stem, path.name
        ids.append(loaded.playbook.id)
    assert len(ids) == len(set(ids))


def test_every_playbook_has_the_required_top_level_fields(library: dict[str, Playbook]) -> None:
    """Every playbook has a title, a version (1, or higher where the steps changed:
    offboarding 2 made due dates follow the last day, 3 added the access-removal sign-off;
    onboarding, maintenance and the security review 2 added sign-offs and evidence forms),
    a description, a category and typed inputs."""
    versions = {"user-offboarding": 3, "client-onboarding": 2, "monthly-maintenance": 2,
                "quarterly-security-review": 2}
    for pb in library.values():
        assert pb.title and pb.description and pb.category, pb.id
        assert pb.version == versions.get(pb.id, 1), pb.id
        assert pb.inputs, f"{pb.id}: no inputs"


def test_every_step_is_fully_specified(library: dict[str, Playbook]) -> None:
    """Every step has instructions, a section, a role (a sign-off: the role that approves
    it), a due rule and the evidence expected."""
    for pb in library.values():
        for step in pb.steps:
            where = f"{pb.id}/{step.id}"
            assert step.description and len(step.description) > 80, where
            assert step.section, where
            assert step.role or step.approver_role, where
            assert step.due, where
            assert step.evidence, where


def test_every_role_is_one_of_the_six_team_roles(library: dict[str, Playbook]) -> None:
    """Steps are assigned only to the six roles of config/team.yaml, never to named people
    (a sign-off is left unassigned: any holder of its approving role may take it)."""
    used = set()
    for pb in library.values():
        for step in pb.steps:
            role = step.role or step.approver_role
            assert role in ROLES, f"{pb.id}/{step.id}: role {role!r}"
            assert step.assignee is None, f"{pb.id}/{step.id}: assign by role, not by name"
            used.add(role)
    assert used == ROLES  # the library exercises every role
    if TEAM_FILE.exists():
        team = yaml.safe_load(TEAM_FILE.read_text(encoding="utf-8")) or {}
        assert set(team.get("roles") or {}) >= ROLES, "config/team.yaml lacks a library role"


def test_every_when_refers_to_declared_inputs(library: dict[str, Playbook]) -> None:
    """Every field a `when` condition reads is an input the playbook declares."""
    for pb in library.values():
        declared = {i.id for i in pb.inputs}
        for step in pb.steps:
            if step.when is not None:
                for path in fields_of(parse_condition(step.when)):
                    assert path.split(".", 1)[0] in declared, f"{pb.id}/{step.id}: {path}"


def test_a_when_on_an_undeclared_input_fails_to_load(tmp_path: Path) -> None:
    """The loader rejects a `when` over an input the playbook does not declare, naming it."""
    doc = yaml.safe_load((PLAYBOOKS / "user-offboarding.yaml").read_text(encoding="utf-8"))
    doc["steps"][3]["when"] = {"has_laptop": True}  # typo of has_company_device
    (tmp_path / "user-offboarding.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_library(tmp_path)
    assert "has_laptop" in str(info.value)
    assert info.value.key == "steps.3.when"
    assert info.value.line is not None


def test_every_after_resolves_and_an_unknown_one_fails(
    library: dict[str, Playbook], tmp_path: Path
) -> None:
    """Every `after` names a step of the same playbook; an unknown step fails to load."""
    for pb in library.values():
        ids = {s.id for s in pb.steps}
        for step in pb.steps:
            assert set(step.after) <= ids, f"{pb.id}/{step.id}: {step.after}"
    doc = yaml.safe_load((PLAYBOOKS / "client-onboarding.yaml").read_text(encoding="utf-8"))
    doc["steps"][-1]["after"] = ["verify-backup"]  # typo of verify-backups
    (tmp_path / "client-onboarding.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown step 'verify-backup'"):
        load_library(tmp_path)


def test_auto_hints_are_known_event_kinds(library: dict[str, Playbook]) -> None:
    """`auto` hints name real event kinds (a typo would never match a mapping rule)."""
    kinds = {k.value for k in EventKind}
    for pb in library.values():
        for step in pb.steps:
            assert set(step.auto) <= kinds, f"{pb.id}/{step.id}: {step.auto}"


def test_launch_inputs_and_defaults_are_valid(library: dict[str, Playbook]) -> None:
    """Sample launch inputs of every type are accepted, and every default has a valid type."""
    for pb in library.values():
        for flavour in (True, False):
            coerce_inputs(pb, _inputs(pb, flavour))
        for spec in pb.inputs:
            if spec.default is not None:
                coerce_inputs(pb, {**_inputs(pb, True), spec.id: spec.default})


def test_scheduled_playbooks_launch_without_inputs(library: dict[str, Playbook]) -> None:
    """Playbooks with a schedule launch for every client with no inputs (defaults only)."""
    scheduled = {pb.id: pb for pb in library.values() if pb.schedule}
    assert scheduled.keys() == {"monthly-maintenance", "quarterly-security-review"}
    assert scheduled["monthly-maintenance"].schedule == "monthly on day 1 at 09:00"
    assert scheduled["quarterly-security-review"].schedule == "quarterly on day 1 at 09:00"
    for pb in scheduled.values():
        coerce_inputs(pb, {})


@pytest.mark.parametrize("flavour", [True, False], ids=["inputs-true", "inputs-false"])
def test_every_playbook_can_be_worked_to_completion(
    library: dict[str, Playbook], flavour: bool
) -> None:
    """Completing whatever step is open always leads to a completed run (no deadlock)."""
    for pb in library.values():
        run = _launch(pb, _inputs(pb, flavour))
        for _ in range(len(pb.steps)):
            open_steps = [s for s in run.steps if s.status is engine.StepStatus.OPEN]
            if not open_steps:
                break
            run = _work(pb, run, open_steps[0].step_id, evidence="test")
        assert run.status is engine.RunStatus.COMPLETED, pb.id


# --------------------------------------------------------------------------- client onboarding


def test_client_onboarding_size_and_backup_verification(library: dict[str, Playbook]) -> None:
    """Client onboarding has 15-21 steps (20 and the service manager's sign-off), an
    unskippable verify-backups ticked by alerts."""
    pb = library["client-onboarding"]
    assert 15 <= len(pb.steps) <= 21
    verify = pb.step("verify-backups")
    assert verify.skippable is False
    assert "alert.resolved" in verify.auto
    assert "device.added" in pb.step("deploy-rmm-agent").auto
    assert {"has_m365", "has_servers", "endpoint_count", "go_live_date", "client_contact"} <= {
        i.id for i in pb.inputs
    }
    # the sign-off meeting is last and waits for the backup verification
    assert pb.steps[-1].id == "signoff-meeting"
    assert "verify-backups" in pb.step("signoff-meeting").after


def test_client_onboarding_conditional_steps(library: dict[str, Playbook]) -> None:
    """Server and M365 steps only apply when the client has servers / M365."""
    pb = library["client-onboarding"]
    inputs = {"go_live_date": "2025-04-01", "has_m365": False, "has_servers": False}
    run = _launch(pb, inputs)
    na = {s.step_id for s in run.steps if s.status is engine.StepStatus.NOT_APPLICABLE}
    assert {"document-servers", "configure-server-backup", "configure-m365-backup",
            "enforce-mfa"} <= na
    assert "verify-backups" not in na


# --------------------------------------------------------------------------- maintenance


def test_monthly_maintenance_size_and_backup_verification(library: dict[str, Playbook]) -> None:
    """Monthly maintenance has about 20 checks including an unskippable verify-backups."""
    pb = library["monthly-maintenance"]
    assert 18 <= len(pb.steps) <= 24
    assert pb.step("verify-backups").skippable is False
    assert "alert.resolved" in pb.step("verify-backups").auto
    assert "verify-backups" in pb.step("test-restore").after


# --------------------------------------------------------------------------- offboarding


def test_offboarding_is_strictly_ordered(library: dict[str, Playbook]) -> None:
    """User offboarding runs in strict order, with the required leaver inputs."""
    pb = library["user-offboarding"]
    assert pb.strict_order is True
    specs = {i.id: i for i in pb.inputs}
    assert specs["leaver_name"].required is True
    assert specs["last_day"].type is InputType.DATE
    assert specs["leaver_email"].type is InputType.EMAIL
    assert specs["leaver_email"].required is False
    assert specs["convert_mailbox"].type is InputType.BOOLEAN
    assert specs["forward_to"].required is False
    assert specs["has_company_device"].type is InputType.BOOLEAN


def test_offboarding_steps_are_due_within_four_hours(library: dict[str, Playbook]) -> None:
    """Every offboarding step is due 4h after its anchor, except the documented later steps:
    the request check counts from the leaver ticket, the rest from the last day."""
    pb = library["user-offboarding"]
    for step in pb.steps:
        expected = OFFBOARDING_DUE_EXCEPTIONS.get(step.id, "4h")
        assert _due(step.due) == DueRule.parse(expected), f"{step.id}: {step.due}"
        spec = DueSpec.parse(step.due or "")
        assert spec.anchor == ("event" if step.id == "confirm-leaver" else "last_day"), step.id
    # the later steps come last, so strict order never holds a revocation behind them
    tail = [s.id for s in pb.steps[-len(OFFBOARDING_DUE_EXCEPTIONS):]]
    assert set(tail) == set(OFFBOARDING_DUE_EXCEPTIONS)


def test_offboarding_revocation_steps_cannot_be_skipped(library: dict[str, Playbook]) -> None:
    """The access-revocation steps exist, are due in 4h and are `skippable: false`."""
    pb = library["user-offboarding"]
    ids = {s.id for s in pb.steps}
    assert ids >= OFFBOARDING_REVOCATION
    for step_id in OFFBOARDING_REVOCATION:
        step = pb.step(step_id)
        assert step.skippable is False, step_id
        assert _due(step.due) == DueRule.parse("4h"), step_id


def test_offboarding_order_is_enforced_at_run_time(library: dict[str, Playbook]) -> None:
    """A launched offboarding refuses out-of-order completion and skipping a revocation."""
    pb = library["user-offboarding"]
    run = _launch(pb, {"leaver_name": "Pat Leaver", "last_day": "2025-03-03",
                       "has_company_device": False, "convert_mailbox": True})
    assert [s.step_id for s in run.steps if s.status is engine.StepStatus.OPEN] == [
        "confirm-leaver"
    ]
    with pytest.raises(StepLocked):
        engine.complete_step(pb, run, "reset-password", by="user:test", now=NOW)
    with pytest.raises(NotAllowed):
        engine.skip_step(pb, run, "confirm-leaver", by="user:test", reason="busy", now=NOW)
    na = {s.step_id for s in run.steps if s.status is engine.StepStatus.NOT_APPLICABLE}
    assert na == {"secure-company-device", "set-forwarding", "reimage-returned-devices"}


@pytest.mark.parametrize("device", [True, False], ids=["device", "no-device"])
@pytest.mark.parametrize("convert", [True, False], ids=["convert", "no-convert"])
@pytest.mark.parametrize("forward", [True, False], ids=["forward", "no-forward"])
def test_offboarding_order_holds_whichever_steps_apply(
    library: dict[str, Playbook], device: bool, convert: bool, forward: bool
) -> None:
    """Exactly one offboarding step is open at a time, in file order, for every input mix.

    Not-applicable steps count as finished, so a step after a conditional one must also
    name the last unconditional step before it, or it would open at launch.
    """
    pb = library["user-offboarding"]
    inputs: dict[str, Any] = {
        "leaver_name": "Pat Leaver",
        "has_company_device": device,
        "convert_mailbox": convert,
    }
    if forward:
        inputs["forward_to"] = "manager@client.example"
    run = _launch(pb, inputs)
    expected = [s.step_id for s in run.steps if s.status is not engine.StepStatus.NOT_APPLICABLE]
    worked = []
    while run.status is engine.RunStatus.ACTIVE:
        open_steps = [s.step_id for s in run.steps if s.status is engine.StepStatus.OPEN]
        assert len(open_steps) == 1, f"after {worked}: open {open_steps}"
        worked.append(open_steps[0])
        run = _work(pb, run, open_steps[0])
    assert worked == expected


# --------------------------------------------------------------------------- device provisioning


def test_device_provisioning_is_due_in_three_business_days(library: dict[str, Playbook]) -> None:
    """Every device-provisioning step is due within 3 business days; RMM enrolment auto-ticks."""
    pb = library["device-provisioning"]
    for step in pb.steps:
        assert _due(step.due) == DueRule.parse("3 business days"), step.id
    assert "device.added" in pb.step("enrol-rmm").auto
    assert pb.step("enable-encryption").skippable is False


# --------------------------------------------------------------------------- security


def test_quarterly_security_review_ends_with_report_and_meeting(
    library: dict[str, Playbook],
) -> None:
    """The quarterly review's report waits for every review and precedes the client meeting."""
    pb = library["quarterly-security-review"]
    report = pb.step("findings-report")
    reviews = {s.id for s in pb.steps} - {"findings-report", "report-approval",
                                          "client-review-meeting", "remediation-tickets"}
    assert set(report.after) == reviews
    assert "findings-report" in pb.step("client-review-meeting").after
    # and a service manager signs the report off before it goes to the client
    assert "report-approval" in pb.step("client-review-meeting").after
    assert "findings-report" in pb.approved_by("report-approval")


def test_incident_response_containment_and_notifications(library: dict[str, Playbook]) -> None:
    """Containment cannot be skipped and is due fast; regulator notice follows personal data."""
    pb = library["security-incident-response"]
    severity = {i.id: i for i in pb.inputs}["severity"]
    assert severity.type is InputType.CHOICE
    isolate = pb.step("isolate-device")
    assert isolate.skippable is False
    assert _due(isolate.due) == DueRule.parse("1h")
    assert _due(pb.step("triage").due) == DueRule.parse("1h")
    base = {"severity": "low", "has_cyber_insurance": True}
    quiet = _launch(pb, {**base, "personal_data_involved": False})
    breach = _launch(pb, {**base, "personal_data_involved": True})

    def applies(run: engine.RunState, step_id: str) -> bool:
        return run.step(step_id).status is not engine.StepStatus.NOT_APPLICABLE

    assert not applies(quiet, "notify-regulator")
    assert not applies(quiet, "notify-insurer")
    assert applies(breach, "notify-regulator")
    assert applies(breach, "notify-insurer")
    assert applies(quiet, "notify-client") and not applies(quiet, "notify-client-urgent")
    critical = _launch(pb, {"severity": "critical", "has_cyber_insurance": True})
    assert applies(critical, "notify-client-urgent") and not applies(critical, "notify-client")
    assert applies(critical, "notify-insurer")
