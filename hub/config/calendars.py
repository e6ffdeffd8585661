"""``config/calendars.yaml``: business hours, time zones and public holidays by name."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from hub.config.yamlio import expand_env, read_yaml, validation_error
from hub.core.calendars import DEFAULT_CALENDAR, Calendar


def load_calendars(path: Path, *, env: dict[str, str] | None = None) -> dict[str, Calendar]:
    """Load ``config/calendars.yaml``: ``calendars: {default: {...}, <name>: {...}}``.

    A missing file gives ``{"default": DEFAULT_CALENDAR}``; an existing file must define
    ``default``. ``${VAR}`` references are expanded from ``env`` (default: the process
    environment).

    Raises:
        ConfigError: naming the file, line and key of the first problem.
    """
    path = Path(path)
    if not path.exists():
        return {"default": DEFAULT_CALENDAR}
    doc = read_yaml(path)
    data = expand_env(doc.data, env, where=doc)
    if not isinstance(data, dict) or "calendars" not in data:
        raise doc.error("expected a top-level 'calendars:' mapping of calendar name to settings")
    for key in data:
        if key != "calendars":
            raise doc.error(f"unknown top-level key {key!r}; only 'calendars' is allowed", (key,))
    entries = data["calendars"]
    if not isinstance(entries, dict) or not entries:
        raise doc.error("'calendars' must map calendar names to settings", ("calendars",))
    result: dict[str, Calendar] = {}
    for key, entry in entries.items():
        name = str(key)
        loc = ("calendars", name)
        if not isinstance(entry, dict):
            raise doc.error("a calendar must be a mapping (timezone, workdays, hours...)", loc)
        if "name" in entry:
            raise doc.error("a calendar's name is its key; remove 'name'", (*loc, "name"))
        try:
            result[name] = Calendar.model_validate({**entry, "name": name})
        except ValidationError as exc:
            raise validation_error(doc, exc, loc) from exc
    if "default" not in result:
        raise doc.error(
            "a 'default' calendar is required (used for clients without their own)",
            ("calendars",),
        )
    return result
