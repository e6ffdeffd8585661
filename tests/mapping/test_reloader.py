"""RuleHolder: valid edits swap in atomically, broken edits are logged and ignored."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hub.config.live_rules import RuleHolder, fingerprint
from hub.config.playbooks import PlaybookLibrary
from hub.errors import ConfigError

from .conftest import make_library

RULE = (
    "rules:\n  - id: {id}\n    on: alert.resolved\n"
    "    tick: {{playbook: onboard, step: {step}}}\n"
)


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    """A mappings directory with one valid rule, 'first'."""
    directory = tmp_path / "mappings"
    directory.mkdir()
    (directory / "rmm.yaml").write_text(RULE.format(id="first", step="verify-backups"))
    return directory


def _ids(holder: RuleHolder) -> list[str]:
    return [r.id for r in holder.rules.rules]


def test_valid_change_swaps(mappings: Path, library: PlaybookLibrary) -> None:
    """A valid edit replaces the live rules and is logged."""
    # Given a holder with the first rule live
    holder = RuleHolder.load(mappings, lambda: library)
    assert _ids(holder) == ["first"]
    # When the file changes and the holder reloads
    (mappings / "rmm.yaml").write_text(RULE.format(id="second-rule", step="deploy-agent"))
    with capture_logs() as logs:
        assert holder.reload() is True
    # Then the new rules are live
    assert _ids(holder) == ["second-rule"]
    assert [e["event"] for e in logs] == ["mapping_reloaded"]
    assert logs[0]["rules"] == 1


def test_broken_change_keeps_old_rules_and_logs_where(mappings: Path,
                                                     library: PlaybookLibrary) -> None:
    """A broken edit is rejected whole; the log names file, line and reason."""
    holder = RuleHolder.load(mappings, lambda: library)
    live = holder.rules
    (mappings / "rmm.yaml").write_text(
        RULE.format(id="first", step="verify-backups") + RULE.format(id="x", step="nope")[7:]
    )
    with capture_logs() as logs:
        assert holder.reload() is False
    assert holder.rules is live
    (entry,) = logs
    assert entry["event"] == "mapping_reload_failed"
    assert entry["log_level"] == "error"
    assert entry["file"] == str(mappings / "rmm.yaml")
    assert entry["line"] == 7
    assert entry["key"] == "rules.1.tick.step"
    assert "rule 'x'" in entry["reason"] and "has no step 'nope'" in entry["reason"]


def test_maybe_reload_only_when_files_change(mappings: Path, library: PlaybookLibrary) -> None:
    """maybe_reload is a cheap no-op until a file's name, mtime or size changes."""
    holder = RuleHolder.load(mappings, lambda: library)
    live = holder.rules
    with capture_logs() as logs:
        assert holder.maybe_reload() is False
    assert holder.rules is live and logs == []
    # A new file appears
    (mappings / "more.yaml").write_text(RULE.format(id="more", step="deploy-agent"))
    assert holder.maybe_reload() is True
    assert _ids(holder) == ["more", "first"]  # files in name order
    # A broken edit is reported once per change, not on every call
    (mappings / "more.yaml").write_text("rules: [")
    with capture_logs() as logs:
        assert holder.maybe_reload() is False
        assert holder.maybe_reload() is False
    assert [e["event"] for e in logs] == ["mapping_reload_failed"]
    assert logs[0]["file"] == str(mappings / "more.yaml") and logs[0]["line"] == 1
    assert sorted(_ids(holder)) == ["first", "more"]
    # Deleting the broken file brings back a valid set
    (mappings / "more.yaml").unlink()
    assert holder.maybe_reload() is True and _ids(holder) == ["first"]


def test_playbook_change_revalidates_rules(mappings: Path) -> None:
    """A new playbook library (a playbook edit) triggers a reload; if a referenced step
    disappeared, the old rules stay live and the problem is logged."""
    libraries = [make_library()]
    holder = RuleHolder.load(mappings, lambda: libraries[-1])
    live = holder.rules
    # Given the onboarding playbook loses its verify-backups step
    changed = make_library()
    onboard = changed.playbooks["onboard"]
    slim = onboard.playbook.model_copy(update={"steps": onboard.playbook.steps[:1]})
    changed.playbooks["onboard"] = onboard.__class__(slim, onboard.file, "y")
    libraries.append(changed)
    # When a worker checks for changes
    with capture_logs() as logs:
        assert holder.maybe_reload() is False
    # Then the rule referencing the removed step is reported and the old set kept
    assert holder.rules is live
    assert "has no step 'verify-backups'" in logs[0]["reason"]


def test_load_at_startup_raises(mappings: Path, library: PlaybookLibrary) -> None:
    """At start-up there is nothing to fall back to: a broken file raises ConfigError."""
    (mappings / "rmm.yaml").write_text("rules:\n  - id: x\n    on: nope\n")
    with pytest.raises(ConfigError, match="unknown event kind 'nope'"):
        RuleHolder.load(mappings, lambda: library)


def test_fingerprint(mappings: Path, tmp_path: Path) -> None:
    """The fingerprint lists mapping files only and is empty for a missing directory."""
    (mappings / "notes.md").write_text("x")
    assert [name for name, _, _ in fingerprint(mappings)] == ["rmm.yaml"]
    assert fingerprint(tmp_path / "absent") == ()


class _Signalling(RuleHolder):
    """Sets ``swapped`` whenever a reload succeeds."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.swapped = threading.Event()

    def reload(self) -> bool:
        ok = super().reload()
        if ok:
            self.swapped.set()
        return ok


def test_watch_reloads_on_change_until_stopped(mappings: Path, library: PlaybookLibrary) -> None:
    """watch() (watchfiles) reloads when a file changes and returns when stop is set."""
    holder = _Signalling(mappings, lambda: library)
    stop = threading.Event()
    thread = threading.Thread(target=holder.watch, args=(stop,), daemon=True)
    thread.start()
    try:
        # The watcher needs a moment to start; rewrite until it notices (bounded).
        for attempt in range(20):
            rule_id = f"watched-{attempt}"
            (mappings / "rmm.yaml").write_text(RULE.format(id=rule_id, step="deploy-agent"))
            if holder.swapped.wait(timeout=1.0):
                break
        assert holder.swapped.is_set()
        assert _ids(holder)[0].startswith("watched-")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
