"""The one way steps are counted: applicable steps, and how many of them are finished.

A step whose ``when`` is false for the run's inputs is not applicable: it is shown, but
never counted as work. Every place that prints a count (the demo, the CLI, the API, the
notes, the dashboard) goes through :func:`count_steps`, so "17 steps" means the same
everywhere; the not-applicable ones are named beside it when there are any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hub.core.states import StepStatus

FINISHED = frozenset({StepStatus.DONE, StepStatus.SKIPPED})


@dataclass(frozen=True)
class StepCount:
    """Attributes:
    done: finished applicable steps (done or skipped).
    applicable: the steps that are work for this run (the "total" everywhere).
    not_applicable: steps left out by their ``when`` condition.
    """

    done: int
    applicable: int
    not_applicable: int

    @property
    def fraction(self) -> str:
        """``3/17``."""
        return f"{self.done}/{self.applicable}"

    @property
    def label(self) -> str:
        """``17 steps`` or ``17 steps (+3 not applicable)``."""
        text = f"{self.applicable} step{'s' if self.applicable != 1 else ''}"
        return text + (f" (+{self.not_applicable} not applicable)"
                       if self.not_applicable else "")


def count_steps(statuses: Iterable[StepStatus | str]) -> StepCount:
    """Count a run's steps from their statuses (enum or stored string)."""
    done = applicable = not_applicable = 0
    for raw in statuses:
        status = StepStatus(raw)
        if status is StepStatus.NOT_APPLICABLE:
            not_applicable += 1
            continue
        applicable += 1
        done += status in FINISHED
    return StepCount(done, applicable, not_applicable)
