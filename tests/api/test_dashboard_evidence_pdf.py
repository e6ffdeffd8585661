"""The completion record as a PDF: the same facts as the printable page (run, client,
inputs, every step with outcome, who, when, evidence), for signed-in people and through
a share link (refused like the page, and audited as a view)."""

from __future__ import annotations

import io
import os
import re

import pytest
from pypdf import PdfReader

from hub.api.dashboard.record_pdf import font_files, record_pdf
from hub.api.schemas import RunDetail
from hub.config.branding import DEFAULT
from hub.services.tokens import Role
from tests.api.conftest import START, Api
from tests.api.test_dashboard_evidence import _audit_actions, _csrf, _share, _sign_in
from tests.e2e.steps import sample_value


def pdf_text(data: bytes) -> str:
    """Every page's text, whitespace collapsed (table cells wrap their lines)."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def _worked_run(api: Api) -> int:
    run_id = int(api.launch(client="ACME", client_name="Acme Ltd")["id"])
    api.clock.advance(minutes=30)
    done = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
                    {"evidence": "Called HR back on the desk line", "note": "HR ticket 4411"})
    assert done.status_code == 200, done.text
    return run_id


def test_signed_in_people_get_the_record_as_a_pdf(api: Api) -> None:
    """The PDF names the run, the client, the inputs and each step with who, when, evidence."""
    # Given a run whose first step a technician completed with evidence at 10:30
    run_id = _worked_run(api)
    # When a viewer opens the record and follows its PDF link
    _sign_in(api, Role.VIEWER)
    page = api.http.get(f"/runs/{run_id}/record").text
    assert f'href="/runs/{run_id}/record.pdf"' in page
    answer = api.http.get(f"/runs/{run_id}/record.pdf")
    # Then it is a PDF with the record's facts
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert f'filename="record-run-{run_id}.pdf"' in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content.startswith(b"%PDF-")
    text = pdf_text(answer.content)
    for expected in (f"run #{run_id}", "Completion record for Acme Ltd",
                     "Leaver (user offboarding)", "Leaver's full name", "Jane Doe",
                     "Confirm the leaver request is genuine and identify the account",
                     "Block sign-in", "user:alice", "Mon 03 Mar, 10:30",
                     "Called HR back on the desk line", "Note: HR ticket 4411", "Done", "Locked",
                     "Launched Mon 03 Mar 2025, 10:00 UTC by", "Generated Mon 03 Mar 2025, 10:30"):
        assert expected in text, expected
    assert PdfReader(io.BytesIO(answer.content)).metadata.title == (
        "Completion record - Leaver (user offboarding) - Acme Ltd")


def test_the_pdf_needs_a_sign_in_and_an_existing_run(api: Api) -> None:
    """Without a session the PDF is not sent; an unknown run is the missing page."""
    run_id = _worked_run(api)
    api.http.cookies.clear()
    anonymous = api.http.get(f"/runs/{run_id}/record.pdf", follow_redirects=False)
    assert anonymous.status_code in (303, 401) and b"%PDF" not in anonymous.content
    _sign_in(api, Role.VIEWER)
    missing = api.http.get("/runs/999999/record.pdf")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_a_share_link_gives_the_pdf_audited_and_refused_when_revoked(api: Api) -> None:
    """The client's PDF comes through their link; each download is a view in the audit."""
    # Given a shared run
    run_id = _worked_run(api)
    other = api.launch(client="BETA", client_name="Beta Builders")["id"]
    path = _share(api, run_id)
    # When someone without a session opens the shared page and its PDF
    api.http.cookies.clear()
    page = api.http.get(path).text
    assert f'href="{path}/record.pdf"' in page
    answer = api.http.get(f"{path}/record.pdf")
    # Then it is that run's record, and both views are audit facts
    assert answer.status_code == 200 and answer.content.startswith(b"%PDF-")
    text = pdf_text(answer.content)
    assert "Acme Ltd" in text and "Beta Builders" not in text and f"#{other}" not in text
    assert "Shared read-only; the link expires" in text
    assert _audit_actions(api, run_id).count("shared_record_viewed") == 2
    # When the link is revoked, the PDF is refused too (an HTML page, no PDF)
    _sign_in(api, Role.MANAGER)
    record = api.http.get(f"/runs/{run_id}/record").text
    link_id = re.findall(r"/share/(\d+)/revoke", record)[0]
    api.http.post(f"/runs/{run_id}/share/{link_id}/revoke", data={"csrf": _csrf(record)})
    api.http.cookies.clear()
    refused = api.http.get(f"{path}/record.pdf")
    assert refused.status_code == 403 and "revoked" in refused.text
    altered = api.http.get(f"{path[:-3]}xyz/record.pdf")
    assert altered.status_code == 403 and b"%PDF" not in altered.content


def _detail(api: Api, run_id: int) -> RunDetail:
    return RunDetail.model_validate(api.get(f"/api/runs/{run_id}").json())


def test_without_dejavu_the_core_font_replaces_what_latin1_lacks(api: Api) -> None:
    """No fonts found: Helvetica, with dashes and quotes made plain and the rest '?'."""
    run_id = int(api.launch(client="ZOE", client_name="Zoë\u2019s Café — Ωmega")["id"])
    data = record_pdf(_detail(api, run_id), {}, DEFAULT, now=START, font_dirs=())
    text = pdf_text(data)
    assert "Zoë's Café - ?mega" in text
    assert b"/BaseFont /Helvetica" in data


def test_with_dejavu_any_script_is_kept() -> None:
    """Debian's fonts-dejavu-core (there with fontconfig) draws Greek and dashes as they are."""
    if font_files() is None:
        if os.environ.get("CI"):
            pytest.fail("fonts-dejavu-core is not installed")
        pytest.skip("fonts-dejavu-core is not installed (apt-get install fonts-dejavu-core)")
    detail = RunDetail.model_validate({
        "id": 7, "playbook": "p", "playbook_title": "Quarterly review", "version": 1,
        "client": "omega", "client_name": "Ωmega — Zoë", "status": "completed",
        "progress": {"done": 0, "total": 0}, "overdue": 0, "launched_at": START,
        "launched_by": "user:max", "completed_at": START, "ticket": None, "inputs": {},
        "cancel_reason": None, "steps": []})
    text = pdf_text(record_pdf(detail, {}, DEFAULT, now=START))
    assert "Completion record for Ωmega — Zoë" in text


@pytest.mark.parametrize("text", ["word " * 4000, "\n" * 3000, "W" * 20000, "Mi " * 7000])
@pytest.mark.parametrize("font_dirs", [None, ()], ids=["dejavu", "core-font"])
def test_texts_too_long_for_a_page_are_cut_with_a_pointer_to_the_page(
        text: str, font_dirs: tuple[()] | None) -> None:
    """A table row must fit one page: a huge evidence, note, title or input is cut in the
    PDF (saying how much is left out), whatever its characters, and the PDF is made."""
    step = {"step_id": "s", "title": text, "section": None, "status": "done",
            "skippable": False, "assignee": None, "due_at": None, "overdue": False,
            "done_by": text, "done_at": START, "evidence": text, "note": text,
            "skip_reason": text, "blockers": []}
    detail = RunDetail.model_validate({
        "id": 7, "playbook": "p", "playbook_title": text[:300], "version": 1,
        "client": "c", "client_name": None, "status": "active",
        "progress": {"done": 1, "total": 1}, "overdue": 0, "launched_at": START,
        "launched_by": "user:max", "completed_at": None, "ticket": None,
        "inputs": {"a": text, text[:200]: text}, "cancel_reason": None, "steps": [step]})
    kw = {} if font_dirs is None else {"font_dirs": font_dirs}
    data = record_pdf(detail, {}, DEFAULT, now=START, **kw)  # type: ignore[arg-type]
    assert "more characters on the record page" in pdf_text(data)


def test_ordinary_evidence_is_not_cut() -> None:
    """Fifteen hundred characters of evidence (about 40 lines in its column) are printed whole."""
    evidence = " ".join(f"check{i:03d} passed;" for i in range(90))
    assert len(evidence) > 1500
    step = {"step_id": "s", "title": "Verify backups", "section": None, "status": "done",
            "skippable": False, "assignee": None, "due_at": None, "overdue": False,
            "done_by": "user:alice", "done_at": START, "evidence": evidence, "note": None,
            "skip_reason": None, "blockers": []}
    detail = RunDetail.model_validate({
        "id": 7, "playbook": "p", "playbook_title": "Review", "version": 1, "client": "c",
        "client_name": None, "status": "active", "progress": {"done": 1, "total": 1},
        "overdue": 0, "launched_at": START, "launched_by": "user:max", "completed_at": None,
        "ticket": None, "inputs": {}, "cancel_reason": None, "steps": [step]})
    text = pdf_text(record_pdf(detail, {}, DEFAULT, now=START))
    assert "check089 passed;" in text and "more characters" not in text


def _work_through(api: Api, run_id: int) -> None:
    """Finish every step: alice completes (evidence forms filled), max signs off."""
    for _ in range(60):  # bounded: one open step finished per round
        steps = api.get(f"/api/runs/{run_id}").json()["steps"]
        step = next((s for s in steps if s["status"] == "open"), None)
        if step is None:
            return
        if step.get("approval"):
            done = api.post(f"/api/runs/{run_id}/steps/{step['step_id']}/approve",
                            Role.MANAGER, {"comment": "Checked the revocations"})
        else:
            fields = {f["id"]: sample_value(f) for f in step.get("evidence_fields") or []}
            done = api.post(f"/api/runs/{run_id}/steps/{step['step_id']}/complete",
                            Role.TECHNICIAN, {"evidence": "done", "fields": fields})
        assert done.status_code == 200, done.text
    raise AssertionError("the run did not finish")


def test_a_sign_off_reads_approved_with_its_role_and_approver(api: Api) -> None:
    """The record page and the PDF say a finished sign-off was approved, by whom, as what."""
    # Given a leaver run worked to the end, its access removal signed off by max
    run_id = int(api.launch(client="ACME", client_name="Acme Ltd")["id"])
    _sign_in(api, Role.VIEWER)
    before = api.http.get(f"/runs/{run_id}/record").text
    assert "sign-off (service-manager)" in before  # a sign-off still to come says so
    _work_through(api, run_id)
    # When the record is opened as a page and as a PDF
    page = api.http.get(f"/runs/{run_id}/record").text
    text = pdf_text(api.http.get(f"/runs/{run_id}/record.pdf").content)
    # Then the sign-off row says approved, by user:max, with the comment
    row = page.split("Service manager signs off the access removal")[1].split("</tr>")[0]
    assert ">approved</span>" in row and "user:max" in row and "Checked the revocations" in row
    signed = text.split("Service manager signs off the access removal")[1][:200]
    squeezed = signed.replace(" ", "")  # a narrow column wraps the role's name anywhere
    assert "Approved(sign-off,service-manager)user:max" in squeezed
    assert "Checked the revocations" in signed
