"""Load playbook YAML files into a validated library; errors name file, line and field."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from hub.config.team import Roster
from hub.config.yamlio import parse_yaml, validation_error
from hub.core.checklists.schema import Playbook
from hub.core.suggest import hint
from hub.errors import ConfigError, Loc

_UNKNOWN_STEP = re.compile(r"^unknown step '([^']*)'$")
_PATH_IN_MSG = re.compile(r"^(?:Value error, )?((?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+))*): ")


log = structlog.get_logger()


@dataclass(frozen=True)
class LoadedPlaybook:
    """A validated playbook, the file it came from and the hash of its definition."""

    playbook: Playbook
    file: str
    digest: str


@dataclass
class PlaybookLibrary:
    """Every playbook currently on disk, by id."""

    playbooks: dict[str, LoadedPlaybook] = field(default_factory=dict)

    def get(self, playbook_id: str) -> Playbook:
        """The playbook with this id (KeyError when absent)."""
        return self.playbooks[playbook_id].playbook

    def __contains__(self, playbook_id: object) -> bool:
        return playbook_id in self.playbooks

    def __iter__(self) -> Iterator[Playbook]:
        return (lp.playbook for lp in self.playbooks.values())

    def __len__(self) -> int:
        return len(self.playbooks)


def digest(playbook: Playbook) -> str:
    """A stable SHA-256 of the playbook's definition (what a run pins)."""
    canonical = json.dumps(playbook.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_playbook(text: str, file: str, roster: Roster | None = None) -> Playbook:
    """Validate one playbook document.

    Args:
        roster: when given, every step's ``role`` and ``assignee`` must be in it (a
            misspelt role would leave the launched step unassigned, silently).

    Raises:
        ConfigError: naming the file, the line and the field at fault.
    """
    doc = parse_yaml(text, file)
    if not isinstance(doc.data, dict):
        raise ConfigError("a playbook file must be a mapping with id, title, version, steps",
                          file=file, line=1)
    try:
        playbook = Playbook.model_validate(doc.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        match = _PATH_IN_MSG.match(err["msg"])
        if not err["loc"] and match:
            loc: Loc = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
            message = err["msg"][match.end():]
            raise doc.error(_step_hint(message, loc, doc.data), loc) from exc
        raise validation_error(doc, exc, model=Playbook) from exc
    for message, where in staff_problems(playbook, roster) if roster else ():
        raise doc.error(message, where)
    return playbook


def staff_problems(playbook: Playbook, roster: Roster) -> Iterator[tuple[str, Loc]]:
    """Steps naming a role or an assignee the team file does not have."""
    for i, step in enumerate(playbook.steps):
        if step.role is not None and step.role not in roster.roles:
            known = ", ".join(sorted(roster.roles)) or "none defined"
            yield (f"step '{step.id}': role '{step.role}' is not in {roster.file}"
                   f"{hint(step.role, roster.roles)} (roles: {known}); a step with an "
                   "unknown role is launched unassigned", ("steps", i, "role"))
        if step.assignee is not None and step.assignee not in roster.members:
            known = ", ".join(sorted(roster.members)) or "none defined"
            yield (f"step '{step.id}': assignee '{step.assignee}' is not a member in "
                   f"{roster.file}{hint(step.assignee, roster.members)} (members: {known})",
                   ("steps", i, "assignee"))


def _step_hint(message: str, loc: Loc, data: Any) -> str:
    """A suggestion for ``after: [a step id]`` that names no step of the playbook."""
    match = _UNKNOWN_STEP.match(message)
    steps = data.get("steps") if isinstance(data, dict) else None
    if match is None or not isinstance(steps, list) or loc[-1:] != ("after",):
        return message
    ids = [s["id"] for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)]
    return message + hint(match.group(1), ids)


def load_file(path: Path, roster: Roster | None = None) -> LoadedPlaybook:
    """Read and validate one playbook file (steps checked against ``roster`` if given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    playbook = parse_playbook(text, str(path), roster)
    return LoadedPlaybook(playbook=playbook, file=str(path), digest=digest(playbook))


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their *.yaml / *.yml files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def check_files(paths: Iterable[Path], roster: Roster | None = None
                ) -> tuple[list[LoadedPlaybook], list[ConfigError]]:
    """Validate every file, collecting all errors (for `msphub playbooks check`).

    Args:
        roster: the team's roles and members (``load_roster``); steps must name those.
    """
    good: list[LoadedPlaybook] = []
    errors: list[ConfigError] = []
    seen: dict[str, str] = {}
    for path in playbook_files(paths):
        try:
            loaded = load_file(path, roster)
        except ConfigError as exc:
            errors.append(exc)
            continue
        pid = loaded.playbook.id
        if pid in seen:
            errors.append(ConfigError(f"playbook id '{pid}' is already defined in {seen[pid]}",
                                      file=str(path), line=1, key="id"))
            continue
        seen[pid] = str(path)
        good.append(loaded)
    return good, errors


def load_library(directory: Path) -> PlaybookLibrary:
    """Load every playbook in a directory.

    Raises:
        ConfigError: the first invalid file (a broken library never half-loads).
    """
    if not directory.exists():
        return PlaybookLibrary()
    good, errors = check_files([directory])
    if errors:
        raise errors[0]
    return PlaybookLibrary({lp.playbook.id: lp for lp in good})


def _fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    if not directory.exists():
        return ()
    return tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in playbook_files([directory])
    )


@dataclass
class PlaybookSource:
    """The playbook library on disk, reloaded when its files change.

    A broken edit is logged and the last good library stays in use; runs already
    launched keep the version they pinned regardless. With ``roster``, each load warns
    (``playbook_unknown_staff``) about steps naming a role or assignee the team lacks:
    they would be launched unassigned. A warning, not a refusal, so a team edit never
    stops a running hub; ``msphub playbooks check`` refuses them.
    """

    directory: Path
    roster: Roster | None = None
    _library: PlaybookLibrary = field(default_factory=PlaybookLibrary)
    _fingerprint: tuple[tuple[str, int, int], ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._library = load_library(self.directory)
        self._fingerprint = _fingerprint(self.directory)
        self._warn_staff()

    def _warn_staff(self) -> None:
        if self.roster is None:
            return
        warn = structlog.get_logger(__name__).warning  # per call: honours test capture
        for loaded in self._library.playbooks.values():
            for message, loc in staff_problems(loaded.playbook, self.roster):
                warn("playbook_unknown_staff", file=loaded.file,
                            key=".".join(map(str, loc)), reason=message)

    def __call__(self) -> PlaybookLibrary:
        """The current library (cheap: a directory stat when nothing changed)."""
        fp = _fingerprint(self.directory)
        if fp != self._fingerprint:
            with self._lock:
                if fp != self._fingerprint:
                    self._fingerprint = fp
                    try:
                        self._library = load_library(self.directory)
                        log.info("playbooks_reloaded", count=len(self._library))
                        self._warn_staff()
                    except ConfigError as exc:
                        log.error("playbooks_reload_failed", file=exc.file, line=exc.line,
                                  reason=exc.message)
        return self._library
