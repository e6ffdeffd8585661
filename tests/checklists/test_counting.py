"""One definition of "steps": the applicable ones (a step whose ``when`` is false is not
work); tests/cli/test_step_counts.py checks the CLI and the launch note agree."""

from __future__ import annotations

from hub.core.checklists.counting import count_steps
from hub.core.states import StepStatus


def test_count_steps_counts_applicable_steps_and_names_the_others() -> None:
    """done and skipped are finished; not-applicable steps are left out of the total."""
    counted = count_steps([StepStatus.DONE, "skipped", "open", "locked", "not_applicable"])
    assert (counted.done, counted.applicable, counted.not_applicable) == (2, 4, 1)
    assert counted.fraction == "2/4"
    assert counted.label == "4 steps (+1 not applicable)"
    assert count_steps(["open"]).label == "1 step"
