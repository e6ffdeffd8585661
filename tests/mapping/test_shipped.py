"""The shipped mappings/: they load against the shipped playbooks, and every sample event
produces the actions pinned in tests/mapping/snapshots/ (UPDATE_SNAPSHOTS=1 regenerates)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hub.config.mappings import check_rules, load_rules
from hub.config.playbooks import PlaybookLibrary, load_library
from hub.config.yamlio import read_yaml
from hub.core.checklists.schema import coerce_inputs
from hub.core.events import Event
from hub.core.mapping.actions import Launch, action_to_dict
from hub.core.mapping.engine import RuleSet, explain
from hub.core.mapping.schema import mapping_json_schema

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"
PLAYBOOKS = REPO / "playbooks"
SAMPLES = sorted((MAPPINGS / "samples").glob("*.json"))
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(scope="module")
def library() -> PlaybookLibrary:
    """The shipped playbook library."""
    return load_library(PLAYBOOKS)


@pytest.fixture(scope="module")
def shipped(library: PlaybookLibrary) -> RuleSet:
    """The shipped rules."""
    return load_rules(MAPPINGS, library)


def _event(path: Path) -> Event:
    return Event.model_validate_json(path.read_bytes())


def _observed(shipped: RuleSet, event: Event) -> dict[str, Any]:
    result = explain(shipped, event)
    return {
        "event": {"kind": str(event.kind), "vendor": event.vendor, "source": event.source},
        "matched": [m.rule_id for m in result.matched],
        "actions": [action_to_dict(a) for a in result.actions],
        "errors": [{"rule_id": e.rule_id, "message": e.message} for e in result.errors],
        "stopped_by": result.stopped_by,
    }


def test_shipped_mappings_are_valid(library: PlaybookLibrary) -> None:
    """`msphub mappings check` passes on the shipped files with the shipped playbooks."""
    assert [str(e) for e in check_rules([MAPPINGS], library)] == []


def test_samples_exist() -> None:
    """There are sample events to run."""
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_matches_snapshot(shipped: RuleSet, sample: Path) -> None:
    """Each sample event yields exactly the pinned actions (and errors)."""
    observed = _observed(shipped, _event(sample))
    snapshot = SNAPSHOTS / f"{sample.stem}.json"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(json.dumps(observed, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
    assert snapshot.exists(), f"no snapshot for {sample.name}: run UPDATE_SNAPSHOTS=1 pytest"
    assert observed == json.loads(snapshot.read_text(encoding="utf-8"))


def test_no_stale_snapshots() -> None:
    """Every snapshot belongs to a sample (delete snapshots of removed samples)."""
    stems = {p.stem for p in SAMPLES}
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.json") if p.stem not in stems) == []


def test_every_enabled_rule_has_a_matching_sample(shipped: RuleSet) -> None:
    """Each shipped rule (except disabled ones) is exercised by at least one sample."""
    hit: set[str] = set()
    for sample in SAMPLES:
        result = explain(shipped, _event(sample))
        hit |= {m.rule_id for m in result.matched} | {e.rule_id for e in result.errors}
    enabled = {r.id for r in shipped.rules if r.rule.enabled}
    assert sorted(enabled - hit) == []


def test_sample_launches_pass_the_playbooks_input_checks(
    shipped: RuleSet, library: PlaybookLibrary
) -> None:
    """The inputs shipped rules render are accepted by the playbook at launch."""
    launches = [a for s in SAMPLES for a in explain(shipped, _event(s)).actions
                if isinstance(a, Launch)]
    assert launches
    for launch in launches:
        coerce_inputs(library.get(launch.playbook), launch.inputs)


@pytest.mark.parametrize("path", sorted(MAPPINGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_files_validate_against_the_json_schema(path: Path) -> None:
    """The JSON Schema editors use accepts the shipped files."""
    data = read_yaml(path).data
    for rule in data["rules"]:
        if True in rule:  # YAML 1.1 `on:`; editors' YAML 1.2 parsers read it as "on"
            rule["on"] = rule.pop(True)
    jsonschema.validate(data, mapping_json_schema())


def test_every_shipped_rule_is_documented(shipped: RuleSet) -> None:
    """Admins read the rules: each has a description and is listed in mappings/README.md."""
    readme = (MAPPINGS / "README.md").read_text(encoding="utf-8")
    for compiled in shipped.rules:
        assert compiled.rule.description, compiled.id
        assert f"`{compiled.id}`" in readme, compiled.id
