"""Our request bodies against the research notes' Autotask examples (there is no Autotask
spec file: ``shared/vendor-specs/autotask/SOURCES.md`` says why).

The ``http`` blocks of ``shared/vendor-notes/psa.md`` §2 show each request the connector
makes, with a JSON body from the vendor's docs or from client code. Every key we send
must be in that example, or in :data:`EXTRA` with where it comes from. Skips only when
``shared/`` is not beside the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import respx

from connectors.autotask import AutotaskConnector
from hub.core.events import SubjectRef
from tests.connectors.autotask.conftest import API, HOOK_URL, page

NOTES = Path(__file__).resolve().parents[3].parent / "shared" / "vendor-notes" / "psa.md"
BLOCK = re.compile(r"```http\n(?P<method>[A-Z]+) (?P<path>\S+)\n(?P<rest>.*?)```", re.DOTALL)

# Keys the examples do not show, and why we send them.
EXTRA: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "Tickets/{id}/Notes"): {
        "ticketID": "TicketNote field (pdat TicketNoteModel); harmless on the child URL"},
    ("POST", "Tickets/{id}/Attachments"): {
        "parentID": "TicketAttachment field (pdat TicketAttachmentModel)"},
    ("POST", "TicketWebhooks"): {
        "isActive": "the example's own key: we create inactive, then activate (PATCH)"},
    ("POST", "TicketWebhooks/{id}/Fields"): {},
}


def _examples() -> dict[tuple[str, str], dict[str, Any]]:
    if not NOTES.is_file():
        pytest.skip("shared/ (vendor notes) is not beside the repository")
    text = NOTES.read_text(encoding="utf-8")
    section = text[text.index("## 2. Autotask"):text.index("## 3. HaloPSA")]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for match in BLOCK.finditer(section):
        path = re.sub(r"^.*?/V1\.0/", "", match["path"].split("?")[0], flags=re.I)
        path = re.sub(r"/\d+(?=/|$)", "/{id}", path)
        body = match["rest"][match["rest"].find("{"):]
        if not body.strip():
            continue
        try:
            found[(match["method"], path)] = json.loads(body)
        except ValueError:
            continue  # a block with prose or headers only
    return found


def _template(path: str) -> str:
    path = re.sub(r"^.*?/V1\.0/", "", path, flags=re.I)
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


def _sent(api: respx.MockRouter) -> dict[tuple[str, str], set[str]]:
    sent: dict[tuple[str, str], set[str]] = {}
    for call in api.calls:
        if call.request.method in ("POST", "PATCH") and call.request.content:
            key = (call.request.method, _template(call.request.url.path))
            sent.setdefault(key, set()).update(json.loads(call.request.content))
    return sent


def test_write_back_and_registration_bodies_use_the_documented_keys(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Notes, attachments, status, webhook creation and fields: documented keys only."""
    examples = _examples()
    ticket = SubjectRef(type="ticket", id="351181", source="at-test")
    autotask_api.post(f"{API}/Tickets/351181/Notes").respond(json={"itemId": 1})
    autotask_api.post(f"{API}/TicketAttachments/query").respond(json=page([]))
    autotask_api.post(f"{API}/Tickets/351181/Attachments").respond(json={"itemId": 2})
    autotask_api.get(f"{API}/Tickets/351181").respond(json={"item": {"id": 351181,
                                                                      "status": 1}})
    autotask_api.patch(f"{API}/Tickets").respond(json={"itemId": 351181})
    autotask_api.post(f"{API}/TicketWebhooks/query").respond(json=page([]))
    autotask_api.post(f"{API}/TicketWebhooks").respond(json={"itemId": 17})
    autotask_api.post(f"{API}/TicketWebhooks/17/Fields").respond(json={"itemId": 3})
    autotask_api.post(f"{API}/TicketWebhooks/17/ExcludedResources").respond(json={"itemId": 4})
    autotask_api.patch(f"{API}/TicketWebhooks").respond(json={"itemId": 17})

    connector.post_note(ticket, "text", key="k")
    connector.attach(ticket, "r.txt", b"data", title="Record", key="k")
    connector.set_status(ticket, "Complete")
    connector.register_webhooks(HOOK_URL)
    list(connector.poll("tickets", None))

    sent = _sent(autotask_api)
    problems = []
    for key, extra in EXTRA.items():
        assert key in examples, f"the notes have no example for {key}"
        assert key in sent, f"the connector sent no {key}"
        unknown = sent[key] - set(examples[key]) - set(extra)
        if unknown:
            problems.append(f"{key}: {sorted(unknown)}")
    for key in (("PATCH", "Tickets"), ("POST", "Tickets/query")):
        if not sent[key] <= set(examples[key]):
            problems.append(f"{key}: {sorted(sent[key] - set(examples[key]))}")
    assert problems == []
