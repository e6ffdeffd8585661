"""``config/team.yaml``: members, roles and per-client overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from hub.config.yamlio import expand_env, read_yaml, validation_error
from hub.core.calendars import Calendar
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
            raise doc.error(err["ctx"]["message"], err["ctx"]["loc"]) from exc
        raise validation_error(doc, exc) from exc
