"""Fixtures for mapping tests: a small playbook library, event and rule-set builders."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.config.mappings import parse_rules
from hub.config.playbooks import LoadedPlaybook, PlaybookLibrary
from hub.core.checklists.schema import Playbook
from hub.core.events import ClientRef, Event, EventKind, SubjectRef
from hub.core.mapping.engine import RuleSet


def _playbook(data: dict[str, Any]) -> LoadedPlaybook:
    playbook = Playbook.model_validate(data)
    return LoadedPlaybook(playbook=playbook, file=f"playbooks/{playbook.id}.yaml", digest="x")


def make_library() -> PlaybookLibrary:
    """Three playbooks: onboarding, offboarding (with inputs) and maintenance."""
    books = [
        {
            "id": "onboard", "title": "Onboard", "version": 1,
            "steps": [
                {"id": "deploy-agent", "title": "Deploy agent"},
                {"id": "verify-backups", "title": "Verify backups"},
            ],
        },
        {
            "id": "offboard", "title": "Offboard", "version": 1,
            "inputs": [
                {"id": "leaver_name", "title": "Leaver", "type": "string"},
                {"id": "last_day", "title": "Last day", "type": "date", "required": False},
                {"id": "convert", "title": "Convert mailbox", "type": "boolean", "default": True},
                {"id": "leaver_email", "title": "Email", "type": "email", "required": False},
            ],
            "steps": [{"id": "disable-sign-in", "title": "Disable sign-in"}],
        },
        {
            "id": "maint", "title": "Maintenance", "version": 1,
            "steps": [{"id": "verify-backups", "title": "Verify backups"}],
        },
    ]
    return PlaybookLibrary({b["id"]: _playbook(b) for b in books})


@pytest.fixture
def library() -> PlaybookLibrary:
    """The test playbook library."""
    return make_library()


def make_event(
    kind: str = "ticket.created",
    data: dict[str, Any] | None = None,
    *,
    vendor: str = "connectwise",
    source: str = "cw-prod",
    client: tuple[str, str | None] | None = ("ACME", "Acme Ltd"),
    key: str = "k1",
) -> Event:
    """A normalized event with sensible defaults."""
    return Event(
        source=source,
        vendor=vendor,
        kind=EventKind(kind),
        dedupe_key=key,
        occurred_at=datetime(2024, 5, 6, 8, 30, tzinfo=UTC),
        client=ClientRef(id=client[0], name=client[1]) if client else None,
        subject=SubjectRef(type=kind.split(".")[0], id="100"),
        data=data or {},
    )


def build_rules(text: str, library: PlaybookLibrary | None = None,
                file: str = "mappings/test.yaml") -> RuleSet:
    """Compile a mapping document (dedented) into a RuleSet; fail on any error."""
    rules, errors = parse_rules(textwrap.dedent(text), file, library or make_library())
    assert not errors, [str(e) for e in errors]
    return RuleSet(rules, [file])


RulesFactory = Callable[[str], RuleSet]


@pytest.fixture
def rules(library: PlaybookLibrary) -> RulesFactory:
    """Build a RuleSet from YAML text against the test library."""
    return lambda text: build_rules(text, library)
