"""``config/team.yaml``: members, roles and per-client overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from hub.config.yamlio import expand_env, read_yaml, validation_error
from hub.core.calendars import Calendar
from hub.core.suggest import hint_listed
from hub.core.team import REFERENCE_ERROR, Team


def load_team(
    path: Path,
    calendars: Mapping[str, Calendar] | None = None,
    *,
    env: dict[str, str] | None = None,
) -> Team:
    """Load ``config/team.yaml``; a missing or empty file gives an empty team.

    Args:
        path: the YAML file.
        calendars: when given, calendars named by members and clients must be keys of it.
        env: values for ``${VAR}`` references (default: the process environment).

    Raises:
        ConfigError: naming the file, line and key of the first problem.
    """
    path = Path(path)
    if not path.exists():
        return Team()
    doc = read_yaml(path)
    data = expand_env(doc.data, env, where=doc)
    if data is None:
        return Team()
    try:
        return Team.model_validate(data, context={"calendars": calendars})
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == REFERENCE_ERROR and "ctx" in err:
            raise doc.error(hint_listed(err["ctx"]["message"]), err["ctx"]["loc"]) from exc
        raise validation_error(doc, exc, model=Team) from exc


@dataclass(frozen=True)
class Roster:
    """The roles and people playbook steps may name, from one ``team.yaml``.

    A role counts when the global ``roles`` or any client's overrides assign it.
    """

    file: str
    roles: frozenset[str]
    members: frozenset[str]

    @classmethod
    def of(cls, team: Team, file: str) -> Roster:
        """The roster of a loaded team."""
        roles = set(team.roles)
        for client in team.clients.values():
            roles |= set(client.roles)
        return cls(file=file, roles=frozenset(roles),
                   members=frozenset(m.id for m in team.members))


def load_roster(path: Path, *, env: dict[str, str] | None = None) -> Roster | None:
    """The roster of ``team.yaml``; None when the file does not exist (steps are then
    unassigned by design, so nothing can be checked).

    Raises:
        ConfigError: the team file is invalid.
    """
    path = Path(path)
    if not path.exists():
        return None
    return Roster.of(load_team(path, env=env), str(path))
