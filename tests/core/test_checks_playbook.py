"""A playbook step declares its verification checks, validated with the rest of the file;
the shipped onboarding verifies the agent step against the RMM."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.config.playbooks import load_library
from hub.core.checklists.schema import Step

REPO = Path(__file__).resolve().parents[2]


def test_a_step_takes_one_check_or_a_list_and_refuses_unknown_kinds() -> None:
    """`check:` on a step: one mapping or a list; a misspelt kind is refused."""
    one = Step.model_validate({"id": "a", "title": "A", "check": {"kind": "agents_online"}})
    many = Step.model_validate({"id": "a", "title": "A", "check": [
        {"kind": "no_critical_patches"}, {"kind": "antivirus_healthy"}]})
    assert [c.kind for c in one.check] == ["agents_online"]
    assert [c.kind for c in many.check] == ["no_critical_patches", "antivirus_healthy"]
    assert Step.model_validate({"id": "a", "title": "A"}).check == ()
    with pytest.raises(ValidationError, match="agents_onlin"):
        Step.model_validate({"id": "a", "title": "A", "check": {"kind": "agents_onlin"}})


def test_the_shipped_onboarding_verifies_the_agent_step() -> None:
    """Client onboarding's "Deploy the RMM agent" step is checked against the RMM."""
    library = load_library(REPO / "playbooks")
    [check] = library.get("client-onboarding").step("deploy-rmm-agent").check
    assert check.kind == "agents_online" and check.min_devices == 1
