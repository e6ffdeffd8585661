"""Typed errors of the hub core.

```
HubError
  ConfigError    bad YAML/env; names the file, line and key
  MappingError   a rule cannot apply to an event; never retried
  StepLocked     .reason is shown to the user (HTTP 409)
  NotAllowed     the transition is not permitted (skip a protected step, act on a closed run)
  NotFound       no such run / step / playbook / client
```
"""

from __future__ import annotations

Loc = tuple[str | int, ...]  # a path into a YAML document: ("rules", 3, "if")


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(HubError):
    """A configuration, playbook or mapping file is invalid.

    Attributes:
        file: the file at fault, when known.
        line: 1-based line number, when known.
        key: the dotted field path, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where} [{self.key}]" if where else f"[{self.key}]"
        return f"{where}: {self.message}" if where else self.message


class MappingError(HubError):
    """A mapping rule could not be applied to an event (permanent)."""


class StepLocked(HubError):
    """A step cannot be completed yet; ``blockers`` names the steps it waits for and
    ``frontier`` the ones that can be done now to unlock it (when a blocker is itself
    locked, the reason names both)."""

    def __init__(self, step: str, blockers: list[str],
                 frontier: list[str] | None = None) -> None:
        self.step = step
        self.blockers = blockers
        self.frontier = list(blockers) if frontier is None else frontier
        self.reason = f"step '{step}' is locked until these steps are done: {', '.join(blockers)}"
        if self.frontier != blockers:
            self.reason += f"; start with: {', '.join(self.frontier)}"
        super().__init__(self.reason)


class NotAllowed(HubError):
    """The requested transition is not permitted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NotFound(HubError):
    """A run, step, playbook or client does not exist."""
