"""A locked step's refusal names the open frontier: the steps that can be done now to
unlock it, not only its direct prerequisites (which may themselves be locked)."""

from __future__ import annotations

import pytest

from hub.core.checklists import engine
from hub.errors import StepLocked
from tests.checklists.test_engine import DIAMOND, complete, diamond


def test_a_step_behind_locked_blockers_names_the_step_to_do_first() -> None:
    """join waits for left and right, which both wait for start: the refusal says so."""
    # Given a fresh run (only start is open)
    run = diamond()
    # When join is completed
    with pytest.raises(StepLocked) as info:
        engine.complete_step(DIAMOND, run, "join", by="user:bob", now=run.launched_at)
    # Then the direct blockers and the step to start with are both named
    assert info.value.blockers == ["left (Left branch)", "right (Right branch)"]
    assert info.value.frontier == ["start (Start here)"]
    assert info.value.reason == (
        "step 'join' is locked until these steps are done: left (Left branch), "
        "right (Right branch); start with: start (Start here)")


def test_the_frontier_is_the_blockers_when_they_are_open() -> None:
    """With start done, left and right are open: they are the frontier, said once."""
    run = complete(DIAMOND, diamond(), "start")
    with pytest.raises(StepLocked) as info:
        engine.complete_step(DIAMOND, run, "join", by="user:bob", now=run.launched_at)
    assert info.value.frontier == info.value.blockers
    assert "start with" not in info.value.reason


def test_frontier_follows_a_partly_finished_branch() -> None:
    """left done, right open: join's frontier is right alone."""
    run = complete(DIAMOND, diamond(), "start", "left")
    assert engine.frontier(DIAMOND, run, "join") == ["right"]
    assert engine.frontier(DIAMOND, diamond(), "join") == ["start"]
